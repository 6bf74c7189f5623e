# Turns the text file IN into OUT, a header with the C string constant NAME
# (the dashboard's page is compiled in, so the tool is one file to install).
file(READ ${IN} text)
string(REPLACE "\\" "\\\\" text "${text}")
string(REPLACE "\"" "\\\"" text "${text}")
string(REPLACE "\n" "\\n\"\n\"" text "${text}")
file(WRITE ${OUT} "/* generated from ${IN} by cmd/embed_text.cmake */\nstatic const char ${NAME}[] =\n\"${text}\";\n")
