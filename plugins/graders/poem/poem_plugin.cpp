// The exported symbols of the poem grader plugin.
#include "poem/poem_grader.h"

PREFENGINE_PLUGIN("poem", prefengine::PluginKind::kGrader,
                  prefengine::plugins::graders::PoemGrader,
                  "Chinese quatrains and regulated verse: rows, characters, rhyme, tones, title")
