// Fixture for tests/engine_includes_test.sh: a plugin-internal header.
#pragma once
