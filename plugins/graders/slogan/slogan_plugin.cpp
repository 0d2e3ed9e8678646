// The exported symbols of the slogan grader plugin.
#include "slogan/slogan_grader.h"

PREFENGINE_PLUGIN("slogan", prefengine::PluginKind::kGrader,
                  prefengine::plugins::graders::SloganGrader,
                  "slogans: length limit, required keywords, banned words, repetition")
