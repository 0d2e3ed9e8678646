# prefengine_add_plugin(NAME <name> KIND <loss|model|grader> SOURCES <files...>
#                       [LIBRARIES <libs...>] [OUTPUT_DIR <dir>])
# Builds the plugin module <OUTPUT_DIR>/libprefengine_<kind>_<name>.so (target
# prefengine_plugin_<name>). The loader finds a plugin by that file name alone and opens no other
# file, so NAME and KIND must be the name and kind given to PREFENGINE_PLUGIN in the sources (the
# loader checks). Only the plugin symbols are exported (hidden visibility).
function(prefengine_add_plugin)
  cmake_parse_arguments(ARG "" "NAME;KIND;OUTPUT_DIR" "SOURCES;LIBRARIES" ${ARGN})
  if(NOT ARG_NAME OR NOT ARG_SOURCES OR NOT ARG_KIND)
    message(FATAL_ERROR "prefengine_add_plugin needs NAME, KIND (loss, model or grader) and SOURCES")
  endif()
  if(NOT ARG_KIND MATCHES "^(loss|model|grader)$")
    message(FATAL_ERROR "prefengine_add_plugin(NAME ${ARG_NAME}): KIND must be loss, model or grader, got '${ARG_KIND}'")
  endif()
  if(NOT ARG_NAME MATCHES "^[A-Za-z0-9_-]+$")
    message(FATAL_ERROR "prefengine_add_plugin: NAME '${ARG_NAME}' may have only letters, digits, '_' and '-'")
  endif()
  set(target prefengine_plugin_${ARG_NAME})
  add_library(${target} MODULE ${ARG_SOURCES})
  target_link_libraries(${target} PRIVATE prefengine::plugin_api ${ARG_LIBRARIES})
  set_target_properties(${target} PROPERTIES
    PREFIX "lib"
    OUTPUT_NAME prefengine_${ARG_KIND}_${ARG_NAME}
    SUFFIX ".so"
    CXX_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON)
  if(ARG_OUTPUT_DIR)
    set_target_properties(${target} PROPERTIES LIBRARY_OUTPUT_DIRECTORY ${ARG_OUTPUT_DIR})
  elseif(DEFINED PREFENGINE_PLUGIN_OUTPUT_DIR)
    set_target_properties(${target} PROPERTIES LIBRARY_OUTPUT_DIRECTORY ${PREFENGINE_PLUGIN_OUTPUT_DIR})
  endif()
  target_compile_options(${target} PRIVATE -Wall -Wextra)
endfunction()
