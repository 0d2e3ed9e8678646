#include "math/symbolic_equivalence.h"

#include <ginac/ginac.h>

#include <time.h>
#include <cctype>
#include <cmath>
#include <map>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>

namespace prefengine::plugins::graders {
namespace {

constexpr int kMaxDepth = 60;
constexpr size_t kMaxDigits = 600;        // digits of one number literal
constexpr double kMaxPowerDigits = 4000;  // estimated digits of an exact power of numbers
constexpr long kMaxSymbolicExponent = 12; // (x+y)^n with a symbolic base: n at most this
constexpr long kMaxFactorial = 400;       // n! computed exactly up to this n
constexpr long kMaxBinomialN = 2000;      // \binom{n}{k} computed exactly up to this n

// Thrown inside the parser when the input is not understood or over the size budget.
struct Refused {};

// Decimal digits of a rational number's numerator plus denominator (its size).
double digits_of(const GiNaC::numeric& n) {
  const double num = GiNaC::abs(n.numer()).to_double();
  const double den = n.denom().to_double();
  auto digits = [](double v) { return v < 10 ? 1.0 : std::log10(v) + 1; };
  return digits(num) + digits(den);
}

// Recursive descent over a normalised answer (no spaces), building a GiNaC expression. The
// grammar is the one of evaluate_expression: + - * / ^, implicit multiplication, \frac, \sqrt,
// \binom, !, \pi, \sin \cos \tan \ln \log \exp, numbers and one-letter variables.
class GinacParser {
 public:
  GinacParser(std::string_view s, std::map<char, GiNaC::symbol>& symbols)
      : s_(s), symbols_(symbols) {}

  GiNaC::ex parse() {
    GiNaC::ex e = expression();
    if (pos_ != s_.size()) throw Refused{};
    return e;
  }

 private:
  bool at_end() const { return pos_ >= s_.size(); }
  char peek() const { return at_end() ? '\0' : s_[pos_]; }
  bool starts(std::string_view w) const { return s_.substr(pos_, w.size()) == w; }
  bool accept(char c) {
    if (peek() != c) return false;
    ++pos_;
    return true;
  }
  bool accept_command(std::string_view w) {
    if (!starts(w)) return false;
    const size_t after = pos_ + w.size();
    if (after < s_.size() && std::isalpha(static_cast<unsigned char>(s_[after]))) return false;
    pos_ = after;
    return true;
  }
  void enter() {
    if (++depth_ > kMaxDepth) throw Refused{};
  }

  GiNaC::ex expression() {
    enter();
    GiNaC::ex left = term();
    while (peek() == '+' || peek() == '-') {
      const char op = s_[pos_++];
      GiNaC::ex right = term();
      left = op == '+' ? left + right : left - right;
    }
    --depth_;
    return left;
  }

  bool starts_primary() const {
    const char c = peek();
    if (std::isalpha(static_cast<unsigned char>(c)) || c == '(' || c == '{') return true;
    if (c == '\\') {
      for (std::string_view w : {"\\frac", "\\sqrt", "\\binom", "\\dbinom", "\\tbinom", "\\pi",
                                 "\\sin", "\\cos", "\\tan", "\\ln", "\\log", "\\exp"}) {
        if (starts(w)) return true;
      }
    }
    return false;
  }

  // "\frac{1}{2}" with integer parts at the current position (the tail of a mixed number).
  bool at_integer_fraction() const {
    if (!starts("\\frac{")) return false;
    size_t i = pos_ + 6;
    for (int group = 0; group < 2; ++group) {
      const size_t digits = i;
      while (i < s_.size() && std::isdigit(static_cast<unsigned char>(s_[i]))) ++i;
      if (i == digits || i >= s_.size() || s_[i] != '}') return false;
      ++i;
      if (group == 0 && (i >= s_.size() || s_[i] != '{')) return false;
      if (group == 0) ++i;
    }
    return true;
  }

  GiNaC::ex term() {
    const size_t start = pos_;
    GiNaC::ex left = signed_factor();
    if (at_integer_fraction()) {  // 2\frac{1}{2} = 2.5
      const std::string_view head = s_.substr(start, pos_ - start);
      const size_t first = !head.empty() && head[0] == '-' ? 1 : 0;
      if (head.size() > first &&
          head.find_first_not_of("0123456789", first) == std::string_view::npos) {
        GiNaC::ex fraction = signed_factor();
        left = first == 1 ? left - fraction : left + fraction;
      }
    }
    while (true) {
      if (accept('*') || accept_command("\\cdot") || accept_command("\\times")) {
        left = left * signed_factor();
      } else if (accept('/') || accept_command("\\div")) {
        GiNaC::ex right = signed_factor();
        if (right.is_zero()) throw Refused{};
        left = left / right;
      } else if (starts_primary() || (pos_ > 0 && s_[pos_ - 1] == '!' &&
                                      std::isdigit(static_cast<unsigned char>(peek())))) {
        left = left * signed_factor();  // 2x, 2(1+x), 2!5!
      } else {
        break;
      }
    }
    return left;
  }

  GiNaC::ex signed_factor() {
    enter();
    GiNaC::ex v;
    if (accept('-')) {
      v = -signed_factor();
    } else if (accept('+')) {
      v = signed_factor();
    } else {
      v = factor();
    }
    --depth_;
    return v;
  }

  GiNaC::ex factor() {
    GiNaC::ex base = primary();
    while (peek() == '!') {
      ++pos_;
      base = factorial_of(base);
    }
    if (!accept('^')) return base;
    GiNaC::ex exponent;
    if (peek() == '{') {
      exponent = primary();
    } else if (peek() == '-' || peek() == '+') {
      exponent = signed_factor();
    } else if (std::isdigit(static_cast<unsigned char>(peek()))) {
      const size_t from = pos_;  // the usual sloppy 2^10 for 2^{10}
      while (std::isdigit(static_cast<unsigned char>(peek()))) ++pos_;
      exponent = literal(std::string(s_.substr(from, pos_ - from)), 0);
    } else {
      exponent = primary();
    }
    return power_of(base, exponent);
  }

  GiNaC::ex power_of(const GiNaC::ex& base, const GiNaC::ex& exponent) {
    // 0^0, 0^-1, 0^x: GiNaC throws from inside pow() and leaks the half-built power, so a zero
    // base is refused here unless its exponent is a positive number.
    if (base.is_zero()) {
      const bool positive = GiNaC::is_a<GiNaC::numeric>(exponent) &&
                            GiNaC::ex_to<GiNaC::numeric>(exponent).is_real() &&
                            GiNaC::ex_to<GiNaC::numeric>(exponent).is_positive();
      if (!positive) throw Refused{};
    }
    if (GiNaC::is_a<GiNaC::numeric>(exponent)) {
      const GiNaC::numeric n = GiNaC::ex_to<GiNaC::numeric>(exponent);
      if (n.is_integer()) {
        const double magnitude = std::fabs(n.to_double());
        if (GiNaC::is_a<GiNaC::numeric>(base)) {
          const GiNaC::numeric b = GiNaC::ex_to<GiNaC::numeric>(base);
          if (b.is_zero() && n.is_negative()) throw Refused{};
          if (magnitude * digits_of(b) > kMaxPowerDigits && !(b.is_equal(1) || b.is_equal(-1))) {
            throw Refused{};
          }
        } else if (magnitude > kMaxSymbolicExponent) {
          throw Refused{};
        }
      } else if (!n.is_rational() || digits_of(n) > 12) {
        throw Refused{};
      }
    } else if (!GiNaC::is_a<GiNaC::symbol>(exponent) && exponent.nops() > 8) {
      throw Refused{};
    }
    return GiNaC::pow(base, exponent);
  }

  GiNaC::ex factorial_of(const GiNaC::ex& n) {
    if (!GiNaC::is_a<GiNaC::numeric>(n)) return GiNaC::factorial(n);
    const GiNaC::numeric v = GiNaC::ex_to<GiNaC::numeric>(n);
    if (!v.is_nonneg_integer() || v.to_double() > kMaxFactorial) throw Refused{};
    return GiNaC::factorial(v);
  }

  // digits with `decimals` of them after the point, as an exact rational.
  GiNaC::ex literal(const std::string& digits, size_t decimals) {
    if (digits.empty() || digits.size() > kMaxDigits) throw Refused{};
    const size_t nz = digits.find_first_not_of('0');
    GiNaC::numeric value(nz == std::string::npos ? "0" : digits.substr(nz).c_str());
    if (decimals > 0) value = value / GiNaC::pow(GiNaC::numeric(10), GiNaC::numeric(static_cast<long>(decimals)));
    return value;
  }

  GiNaC::ex number() {
    const size_t start = pos_;
    while (std::isdigit(static_cast<unsigned char>(peek()))) ++pos_;
    std::string digits(s_.substr(start, pos_ - start));
    size_t decimals = 0;
    if (peek() == '.') {
      ++pos_;
      const size_t from = pos_;
      while (std::isdigit(static_cast<unsigned char>(peek()))) ++pos_;
      decimals = pos_ - from;
      digits += std::string(s_.substr(from, decimals));
    }
    GiNaC::ex value = literal(digits, decimals);
    // Scientific notation: 1.5e-3 (an "e" followed by a digit or a signed digit).
    if (peek() == 'e' || peek() == 'E') {
      size_t k = pos_ + 1;
      bool negative = false;
      if (k < s_.size() && (s_[k] == '-' || s_[k] == '+')) negative = s_[k++] == '-';
      const size_t from = k;
      while (k < s_.size() && std::isdigit(static_cast<unsigned char>(s_[k]))) ++k;
      if (k > from) {
        if (k - from > 4) throw Refused{};
        const long e = std::stol(std::string(s_.substr(from, k - from)));
        if (e > static_cast<long>(kMaxPowerDigits)) throw Refused{};
        value = value * GiNaC::pow(GiNaC::numeric(10), GiNaC::numeric(negative ? -e : e));
        pos_ = k;
      }
    }
    return value;
  }

  GiNaC::ex group() {
    if (accept('{')) {
      GiNaC::ex v = expression();
      if (!accept('}')) throw Refused{};
      return v;
    }
    const char c = peek();
    if (std::isdigit(static_cast<unsigned char>(c))) {
      ++pos_;
      return GiNaC::numeric(c - '0');
    }
    if (std::isalpha(static_cast<unsigned char>(c))) return variable();
    throw Refused{};
  }

  GiNaC::ex variable() {
    const char c = s_[pos_++];
    auto it = symbols_.find(c);
    if (it == symbols_.end()) it = symbols_.emplace(c, GiNaC::symbol(std::string(1, c))).first;
    return it->second;
  }

  GiNaC::ex primary() {
    enter();
    GiNaC::ex v;
    const char c = peek();
    if (std::isdigit(static_cast<unsigned char>(c)) ||
        (c == '.' && pos_ + 1 < s_.size() && std::isdigit(static_cast<unsigned char>(s_[pos_ + 1])))) {
      v = number();
    } else if (accept('(')) {
      v = expression();
      if (!accept(')')) throw Refused{};
    } else if (c == '{') {
      v = group();
    } else if (accept_command("\\frac")) {
      GiNaC::ex a = group();
      GiNaC::ex b = group();
      if (b.is_zero()) throw Refused{};
      v = a / b;
    } else if (accept_command("\\sqrt")) {
      std::optional<GiNaC::ex> index;
      if (accept('[')) {
        index = expression();
        if (!accept(']')) throw Refused{};
      }
      GiNaC::ex radicand = group();
      v = index ? power_of(radicand, 1 / *index) : GiNaC::sqrt(radicand);
    } else if (accept_command("\\binom") || accept_command("\\dbinom") ||
               accept_command("\\tbinom")) {
      GiNaC::ex n = group();
      GiNaC::ex k = group();
      if (!GiNaC::is_a<GiNaC::numeric>(n) || !GiNaC::is_a<GiNaC::numeric>(k)) throw Refused{};
      const GiNaC::numeric nn = GiNaC::ex_to<GiNaC::numeric>(n);
      const GiNaC::numeric kk = GiNaC::ex_to<GiNaC::numeric>(k);
      if (!nn.is_nonneg_integer() || !kk.is_integer() || nn.to_double() > kMaxBinomialN) {
        throw Refused{};
      }
      v = GiNaC::binomial(nn, kk);
    } else if (accept_command("\\pi")) {
      v = GiNaC::Pi;
    } else if (c == '\\') {
      if (accept_command("\\sin")) {
        v = GiNaC::sin(signed_factor());
      } else if (accept_command("\\cos")) {
        v = GiNaC::cos(signed_factor());
      } else if (accept_command("\\tan")) {
        v = GiNaC::tan(signed_factor());
      } else if (accept_command("\\ln")) {
        v = GiNaC::log(signed_factor());
      } else if (accept_command("\\log")) {
        v = GiNaC::log(signed_factor()) / GiNaC::log(GiNaC::ex(10));
      } else if (accept_command("\\exp")) {
        v = GiNaC::exp(signed_factor());
      } else {
        throw Refused{};
      }
    } else if (std::isalpha(static_cast<unsigned char>(c))) {
      v = variable();
    } else {
      throw Refused{};
    }
    --depth_;
    return v;
  }

  std::string_view s_;
  std::map<char, GiNaC::symbol>& symbols_;
  size_t pos_ = 0;
  int depth_ = 0;
};

std::mutex& ginac_mutex() {
  static std::mutex m;
  return m;
}

bool over_time(double start, const SymbolicBudget& budget) { return thread_cpu_millis() - start > budget.max_millis; }

// The verdict on a difference that did not simplify to zero.
SymbolicVerdict verdict_on_nonzero(const GiNaC::ex& d, bool has_symbols) {
  if (GiNaC::is_a<GiNaC::numeric>(d)) {
    return GiNaC::ex_to<GiNaC::numeric>(d).is_rational() ? SymbolicVerdict::kDifferent
                                                        : SymbolicVerdict::kUnknown;
  }
  if (has_symbols) {
    return d.info(GiNaC::info_flags::rational_function) ? SymbolicVerdict::kDifferent
                                                        : SymbolicVerdict::kUnknown;
  }
  // Constants (\sqrt{2} + 1 - \pi): a clearly nonzero value is a difference.
  const GiNaC::ex value = d.evalf();
  if (GiNaC::is_a<GiNaC::numeric>(value)) {
    const GiNaC::numeric n = GiNaC::ex_to<GiNaC::numeric>(value);
    if (n.is_real() && std::fabs(n.to_double()) > 1e-12) return SymbolicVerdict::kDifferent;
  }
  return SymbolicVerdict::kUnknown;
}

std::optional<GiNaC::ex> parse(std::string_view s, std::map<char, GiNaC::symbol>& symbols,
                               const SymbolicBudget& budget) {
  if (s.empty() || s.size() > budget.max_chars) return std::nullopt;
  try {
    return GinacParser(s, symbols).parse();
  } catch (const Refused&) {
    return std::nullopt;
  }
}

}  // namespace

double thread_cpu_millis() {
  timespec now{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now);
  return static_cast<double>(now.tv_sec) * 1e3 + static_cast<double>(now.tv_nsec) / 1e6;
}

void SymbolicBudget::validate() const {
  if (max_chars < 1) throw std::invalid_argument("max_chars: expected >= 1, got 0");
  if (!(max_millis > 0)) {
    throw std::invalid_argument("max_millis: expected a number > 0, got " + std::to_string(max_millis));
  }
}

SymbolicVerdict symbolic_compare(std::string_view a, std::string_view b,
                                 const SymbolicBudget& budget) {
  if (a.size() > budget.max_chars || b.size() > budget.max_chars) return SymbolicVerdict::kUnknown;
  std::lock_guard<std::mutex> lock(ginac_mutex());
  const double start = thread_cpu_millis();
  try {
    std::map<char, GiNaC::symbol> symbols;
    const auto ea = parse(a, symbols, budget);
    const auto eb = parse(b, symbols, budget);
    if (!ea || !eb || over_time(start, budget)) return SymbolicVerdict::kUnknown;
    const GiNaC::ex expanded = (*ea - *eb).expand();
    if (expanded.is_zero()) return SymbolicVerdict::kEqual;
    if (over_time(start, budget)) return SymbolicVerdict::kUnknown;
    const GiNaC::ex normal = expanded.normal();
    if (normal.is_zero()) return SymbolicVerdict::kEqual;
    if (over_time(start, budget)) return SymbolicVerdict::kUnknown;
    return verdict_on_nonzero(normal, !symbols.empty());
  } catch (const std::exception&) {  // pole_error, overflow in GiNaC's numerics
    return SymbolicVerdict::kUnknown;
  }
}

SymbolicVerdict symbolic_compare_equations(std::string_view a, std::string_view b,
                                           const SymbolicBudget& budget) {
  const size_t ea = a.find('='), eb = b.find('=');
  if (ea == std::string_view::npos || eb == std::string_view::npos) return SymbolicVerdict::kUnknown;
  if (a.size() > budget.max_chars || b.size() > budget.max_chars) return SymbolicVerdict::kUnknown;
  std::lock_guard<std::mutex> lock(ginac_mutex());
  const double start = thread_cpu_millis();
  try {
    std::map<char, GiNaC::symbol> symbols;
    const auto l1 = parse(a.substr(0, ea), symbols, budget);
    const auto r1 = parse(a.substr(ea + 1), symbols, budget);
    const auto l2 = parse(b.substr(0, eb), symbols, budget);
    const auto r2 = parse(b.substr(eb + 1), symbols, budget);
    if (!l1 || !r1 || !l2 || !r2 || symbols.empty()) return SymbolicVerdict::kUnknown;
    const GiNaC::ex e1 = (*l1 - *r1).expand();
    const GiNaC::ex e2 = (*l2 - *r2).expand();
    if (e1.is_zero() || e2.is_zero() || over_time(start, budget)) return SymbolicVerdict::kUnknown;
    const GiNaC::ex quotient = (e1 / e2).normal();
    if (over_time(start, budget)) return SymbolicVerdict::kUnknown;
    if (GiNaC::is_a<GiNaC::numeric>(quotient)) {
      return quotient.is_zero() ? SymbolicVerdict::kUnknown : SymbolicVerdict::kEqual;
    }
    return quotient.info(GiNaC::info_flags::rational_function) ? SymbolicVerdict::kDifferent
                                                               : SymbolicVerdict::kUnknown;
  } catch (const std::exception&) {
    return SymbolicVerdict::kUnknown;
  }
}

}  // namespace prefengine::plugins::graders
