// The exported symbols of the math grader plugin.
#include "math/math_grader.h"

PREFENGINE_PLUGIN("math", prefengine::PluginKind::kGrader,
                  prefengine::plugins::graders::MathGrader,
                  "math answers on the 1-5 rubric: final answer vs reference, and the process")
