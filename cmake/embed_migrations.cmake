# Turns db/migrations/NNNN_name.sql into a table of C strings, in file-name order:
# cmake -DDIR=db/migrations -DOUT=out.c -P embed_migrations.cmake
file(GLOB files ${DIR}/*.sql)
list(SORT files)
set(body "/* generated from ${DIR}; do not edit */\n#include \"repo/migrate.h\"\n\n")
set(table "")
set(i 0)
foreach(f ${files})
    get_filename_component(name ${f} NAME)
    file(READ ${f} hex HEX)
    string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
    string(APPEND body "static const char sql_${i}[] = {${bytes} 0};\n")
    string(APPEND table "    {\"${name}\", sql_${i}},\n")
    math(EXPR i "${i} + 1")
endforeach()
string(APPEND body "\nconst struct migration migrations[] = {\n${table}};\n"
       "const size_t migrations_count = ${i};\n")
file(WRITE ${OUT} "${body}")
