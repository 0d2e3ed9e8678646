// Fixture for tests/engine_includes_test.sh: an engine header that includes a plugin's own header
// by its bare name (as engine/cli/generate_command.cpp included "generation.h" before the
// generator moved into the engine). The check must list line 5.
#pragma once
#include "generation.h"
#include "engine/plugins/plugin_loader.h"
#include "prefengine/model.h"
