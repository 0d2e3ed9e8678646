# prefengine_add_plugin(NAME <name> SOURCES <files...> [LIBRARIES <libs...>] [OUTPUT_DIR <dir>])
# Builds a plugin shared library named prefengine_<kind>_<name>-less "lib" prefix... see below.
# The file is <OUTPUT_DIR>/<name>.so; the engine finds plugins by scanning directories for *.so
# and asking each for its info, so the file name is only for people.
function(prefengine_add_plugin)
  cmake_parse_arguments(ARG "" "NAME;OUTPUT_DIR" "SOURCES;LIBRARIES" ${ARGN})
  if(NOT ARG_NAME OR NOT ARG_SOURCES)
    message(FATAL_ERROR "prefengine_add_plugin needs NAME and SOURCES")
  endif()
  set(target prefengine_plugin_${ARG_NAME})
  add_library(${target} MODULE ${ARG_SOURCES})
  target_link_libraries(${target} PRIVATE prefengine::plugin_api ${ARG_LIBRARIES})
  set_target_properties(${target} PROPERTIES
    PREFIX ""
    OUTPUT_NAME ${ARG_NAME}
    CXX_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON)
  if(ARG_OUTPUT_DIR)
    set_target_properties(${target} PROPERTIES LIBRARY_OUTPUT_DIRECTORY ${ARG_OUTPUT_DIR})
  elseif(DEFINED PREFENGINE_PLUGIN_OUTPUT_DIR)
    set_target_properties(${target} PROPERTIES LIBRARY_OUTPUT_DIRECTORY ${PREFENGINE_PLUGIN_OUTPUT_DIR})
  endif()
  target_compile_options(${target} PRIVATE -Wall -Wextra)
endfunction()
