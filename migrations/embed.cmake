# Turns migrations/*.sql into a C++ source so that the binary carries its own schema: `tessera
# migrate` and the server's start-up apply them wherever the binary runs.
file(GLOB files "${MIGRATIONS_DIR}/*.sql")
list(SORT files)
set(body "")
foreach(f ${files})
  get_filename_component(name "${f}" NAME)
  file(READ "${f}" sql)
  string(APPEND body "    {\"${name}\", R\"tessera_sql(${sql})tessera_sql\"},\n")
endforeach()
file(WRITE "${OUTPUT}.tmp" "// Generated from migrations/*.sql by migrations/embed.cmake. Do not edit.\n#include \"services/store/migrations.h\"\n\nnamespace tessera::store {\n\nconst std::vector<Migration>& EmbeddedMigrations() {\n  static const std::vector<Migration> kMigrations = {\n${body}  };\n  return kMigrations;\n}\n\n}  // namespace tessera::store\n")
execute_process(COMMAND ${CMAKE_COMMAND} -E copy_if_different "${OUTPUT}.tmp" "${OUTPUT}")
