set terminal pngcairo size 900,560 font 'DejaVu Sans,11'
set grid ytics lc rgb '#dddddd'
set key top left
set output 'freq.png'
set title 'Holdout purchases per customer by calibration frequency'
set xlabel 'repeat purchase days in the calibration period (x)'
set ylabel 'purchase days in the holdout, mean per customer'
set xtics ('0' 0, '1' 1, '2' 2, '3' 3, '4' 4, '5' 5, '6' 6, '7+' 7)
plot 'freq.dat' u 1:3 w lp lw 2 pt 7 lc rgb '#222222' t 'actual', '' u 1:4 w lp lw 2 pt 5 lc rgb '#d62728' t 'MBG/NBD (fitted)', '' u 1:5 w lp lw 2 dt 2 pt 4 lc rgb '#1f77b4' t 'BG/NBD (fitted)'
set output 'palive.png'
set title 'P(alive) at the calibration end, by holdout outcome'
set xlabel 'P(alive)'
set ylabel 'customers'
set xtics auto
set xrange [0:1]
set logscale y
set yrange [0.8:*]
set style fill solid 0.8 border -1
set boxwidth 0.02
plot 'palive.dat' u ($1-0.011):($3>0?$3:0.8) w boxes lc rgb '#999999' t 'no purchase in the holdout', '' u ($1+0.011):($2>0?$2:0.8) w boxes lc rgb '#2ca02c' t 'bought in the holdout'
unset logscale y
set yrange [*:*]
set xrange [*:*]
set output 'clv.png'
set title 'Predicted value vs actual holdout spend, by predicted CLV decile'
set xlabel 'decile of predicted holdout value (1 = top 10 %)'
set ylabel 'GBP per customer (holdout)'
set xtics 1
set logscale y
set boxwidth 0.35
set style fill solid 0.8 border -1
set key top right
plot 'clv.dat' u ($1-0.18):3 w boxes lc rgb '#d62728' t 'predicted (exp. purchases x Gamma-Gamma value)', '' u ($1+0.18):(($4>1)?$4:1) w boxes lc rgb '#222222' t 'actual net spend'
