// A loss plugin whose loss fails on request: option `fail_at_call` (throw), `int_at_call` (throw
// an int, not a std::exception), `nan_at_call` (return NaN) or `scale_at_call` (return the loss
// times `scale`) on the given call of pairwise(), counting from 1; otherwise a plain DPO loss.
#include <limits>
#include <stdexcept>

#include "prefengine/pairwise_loss.h"

namespace {
class ThrowingLoss : public prefengine::PairwiseLoss {
 public:
  explicit ThrowingLoss(prefengine::PluginOptions& o)
      : fail_at_(o.get_int("fail_at_call", 0, 0)),
        int_at_(o.get_int("int_at_call", 0, 0)),
        nan_at_(o.get_int("nan_at_call", 0, 0)),
        scale_at_(o.get_int("scale_at_call", 0, 0)),
        scale_(o.get_double("scale", 1.0)) {}
  prefengine::LossRequirements requirements() const override {
    prefengine::LossRequirements r;
    r.reference_logps = true;
    return r;
  }
  prefengine::LossOutput pairwise(const prefengine::PairwiseBatch& b) override {
    ++calls_;
    if (calls_ == fail_at_) throw std::runtime_error("deliberate failure");
    if (calls_ == int_at_) throw 42;
    prefengine::LossOutput out;
    at::Tensor z = 0.1 * ((b.chosen_logps - b.ref_chosen_logps) - (b.rejected_logps - b.ref_rejected_logps));
    out.loss = -at::log_sigmoid(z).mean();
    if (calls_ == nan_at_) out.loss = out.loss * std::numeric_limits<double>::quiet_NaN();
    if (calls_ == scale_at_) out.loss = out.loss * scale_;
    return out;
  }

 private:
  int64_t fail_at_;
  int64_t int_at_;
  int64_t nan_at_;
  int64_t scale_at_;
  double scale_;
  int64_t calls_ = 0;
};
}  // namespace

PREFENGINE_PLUGIN("throwing", prefengine::PluginKind::kLoss, ThrowingLoss, "test plugin that fails on request")
