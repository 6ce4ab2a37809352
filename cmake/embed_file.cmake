# Turns one text file into a C string constant: cmake -DIN=file -DOUT=out.c -P embed_file.cmake
file(READ ${IN} hex HEX)
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
file(WRITE ${OUT} "/* generated from ${IN}; do not edit */\n#include <stddef.h>\n"
     "const char openapi_yaml[] = {${bytes} 0};\n"
     "const size_t openapi_yaml_len = sizeof(openapi_yaml) - 1;\n")
