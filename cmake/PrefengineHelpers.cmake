# prefengine_add_plugin(NAME <name> SOURCES <files...> [LIBRARIES <libs...>] [OUTPUT_DIR <dir>])
# Builds the plugin <name> as a MODULE library: target prefengine_plugin_<name>, linked privately
# against prefengine::plugin_api and LIBRARIES, symbols hidden except what PREFENGINE_PLUGIN
# exports. The file is <name>.so (no "lib" prefix) in OUTPUT_DIR, else in
# PREFENGINE_PLUGIN_OUTPUT_DIR when that is set, else in CMake's default library directory. The
# engine finds plugins by scanning directories for *.so and asking each for its info, so the file
# name is only for people. Installed with the SDK (prefengineConfig.cmake includes this file).
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
