#include "math/math_expression.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <numeric>
#include <string>

namespace prefengine::plugins::graders {
namespace {

constexpr int kMaxDepth = 100;

std::optional<Rational> make_rational(__int128 num, __int128 den) {
  if (den == 0) return std::nullopt;
  if (den < 0) num = -num, den = -den;
  __int128 a = num < 0 ? -num : num;
  __int128 b = den;
  while (b != 0) {
    const __int128 t = a % b;
    a = b;
    b = t;
  }
  if (a > 1) num /= a, den /= a;
  const __int128 limit = static_cast<__int128>(INT64_MAX);
  if (num > limit || num < -limit || den > limit) return std::nullopt;
  return Rational{static_cast<int64_t>(num), static_cast<int64_t>(den)};
}

NumericValue from_double(double v, bool vars, bool overflow = false) {
  return NumericValue{v, std::nullopt, vars, overflow};
}

NumericValue from_rational(const Rational& r) {
  return NumericValue{static_cast<double>(r.num) / static_cast<double>(r.den), r, false, false};
}

NumericValue combine(const NumericValue& a, const NumericValue& b, char op) {
  const bool vars = a.has_variables || b.has_variables;
  bool overflow = a.overflow || b.overflow;
  if (a.exact && b.exact) {
    const __int128 an = a.exact->num, ad = a.exact->den, bn = b.exact->num, bd = b.exact->den;
    std::optional<Rational> r;
    switch (op) {
      case '+': r = make_rational(an * bd + bn * ad, ad * bd); break;
      case '-': r = make_rational(an * bd - bn * ad, ad * bd); break;
      case '*': r = make_rational(an * bn, ad * bd); break;
      case '/': r = make_rational(an * bd, ad * bn); break;
    }
    if (r) return from_rational(*r);
    overflow = overflow || !(op == '/' && bn == 0);
  }
  double v = 0;
  switch (op) {
    case '+': v = a.approx + b.approx; break;
    case '-': v = a.approx - b.approx; break;
    case '*': v = a.approx * b.approx; break;
    case '/': v = a.approx / b.approx; break;
  }
  return from_double(v, vars, overflow);
}

NumericValue power(const NumericValue& base, const NumericValue& exponent) {
  const bool vars = base.has_variables || exponent.has_variables;
  if (base.exact && exponent.exact && exponent.exact->den == 1 && std::llabs(exponent.exact->num) <= 64) {
    const int64_t n = exponent.exact->num;
    __int128 num = 1, den = 1;
    bool ok = true;
    const __int128 limit = static_cast<__int128>(INT64_MAX);
    for (int64_t k = 0; k < std::llabs(n) && ok; ++k) {
      num *= base.exact->num;
      den *= base.exact->den;
      ok = num <= limit && num >= -limit && den <= limit;
    }
    if (ok) {
      const auto r = n >= 0 ? make_rational(num, den) : make_rational(den, num);
      if (r) return from_rational(*r);
    }
    return from_double(std::pow(base.approx, exponent.approx), vars, base.exact->num != 0);
  }
  return from_double(std::pow(base.approx, exponent.approx), vars,
                     base.overflow || exponent.overflow);
}

// n! for an exact non-negative integer n (exact up to 20!, rounded with `overflow` above).
std::optional<NumericValue> factorial(const NumericValue& n) {
  if (!n.exact || n.exact->den != 1 || n.exact->num < 0) {
    if (n.overflow) return from_double(INFINITY, n.has_variables, true);
    return std::nullopt;
  }
  const int64_t k = n.exact->num;
  if (k > 20) return from_double(std::tgamma(static_cast<double>(std::min<int64_t>(k, 200)) + 1),
                                 false, true);
  int64_t r = 1;
  for (int64_t i = 2; i <= k; ++i) r *= i;
  return from_rational({r, 1});
}

// The binomial coefficient C(n, k) of exact integers n >= 0 (0 when k < 0 or k > n).
std::optional<NumericValue> binomial(const NumericValue& n, const NumericValue& k) {
  if (!n.exact || !k.exact || n.exact->den != 1 || k.exact->den != 1 || n.exact->num < 0) {
    return std::nullopt;
  }
  const int64_t nn = n.exact->num;
  int64_t kk = k.exact->num;
  if (kk < 0 || kk > nn) return from_rational({0, 1});
  kk = std::min(kk, nn - kk);
  __int128 r = 1;
  const __int128 limit = static_cast<__int128>(INT64_MAX);
  for (int64_t i = 1; i <= kk; ++i) {
    r = r * (nn - kk + i) / i;  // exact: a product of i consecutive integers is divisible by i!
    if (r > limit) {
      const double approx = std::exp(std::lgamma(nn + 1.0) - std::lgamma(kk + 1.0) -
                                     std::lgamma(nn - kk + 1.0));
      return from_double(approx, false, true);
    }
  }
  return from_rational({static_cast<int64_t>(r), 1});
}

// Perfect square root of an exact non-negative rational, when there is one.
std::optional<Rational> exact_sqrt(const Rational& r) {
  if (r.num < 0) return std::nullopt;
  const auto root = [](int64_t v) -> std::optional<int64_t> {
    int64_t s = static_cast<int64_t>(std::llround(std::sqrt(static_cast<double>(v))));
    for (int64_t c = std::max<int64_t>(0, s - 1); c <= s + 1; ++c) {
      if (static_cast<__int128>(c) * c == v) return c;
    }
    return std::nullopt;
  };
  const auto n = root(r.num), d = root(r.den);
  if (n && d) return Rational{*n, *d};
  return std::nullopt;
}

class Parser {
 public:
  Parser(std::string_view s, int point) : s_(s), point_(point) {}

  std::optional<NumericValue> parse() {
    auto v = expression();
    if (!v || !ok_ || pos_ != s_.size()) return std::nullopt;
    return v;
  }

 private:
  bool at_end() const { return pos_ >= s_.size(); }
  char peek() const { return at_end() ? '\0' : s_[pos_]; }
  bool starts(std::string_view w) const { return s_.substr(pos_, w.size()) == w; }
  // Consumes the command `w` ("\pi") when it is not the prefix of a longer command.
  bool accept_command(std::string_view w) {
    if (!starts(w)) return false;
    const size_t after = pos_ + w.size();
    if (after < s_.size() && std::isalpha(static_cast<unsigned char>(s_[after]))) return false;
    pos_ = after;
    return true;
  }
  bool accept(char c) {
    if (peek() != c) return false;
    ++pos_;
    return true;
  }

  std::optional<NumericValue> expression() {
    if (++depth_ > kMaxDepth) return fail();
    auto left = term();
    while (left && ok_) {
      char op = peek();
      if (op != '+' && op != '-') break;
      ++pos_;
      auto right = term();
      if (!right) return fail();
      left = combine(*left, *right, op);
    }
    --depth_;
    return left;
  }

  // "\frac{1}{2}" with integer numerator and denominator at the current position.
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

  std::optional<NumericValue> term() {
    const size_t start = pos_;
    auto left = signed_factor();
    // A mixed number: an integer right before an integer fraction, 2\frac{1}{2} = 2.5.
    if (left && left->exact && at_integer_fraction()) {
      const std::string_view head = s_.substr(start, pos_ - start);
      const size_t first_digit = !head.empty() && head[0] == '-' ? 1 : 0;
      const bool integer = head.size() > first_digit &&
                           head.find_first_not_of("0123456789", first_digit) == std::string_view::npos;
      if (integer) {
        auto fraction = signed_factor();
        if (!fraction) return fail();
        left = combine(*left, *fraction, left->approx < 0 ? '-' : '+');
      }
    }
    while (left && ok_) {
      char op = 0;
      if (accept('*') || accept_command("\\cdot") || accept_command("\\times")) {
        op = '*';
      } else if (accept('/') || accept_command("\\div")) {
        op = '/';
      } else if (starts_primary() ||
                 (pos_ > 0 && s_[pos_ - 1] == '!' && std::isdigit(static_cast<unsigned char>(peek())))) {
        op = '*';  // implicit multiplication: 2\pi, 3x, 2(1+x), 2!5!
      } else {
        break;
      }
      auto right = signed_factor();
      if (!right) return fail();
      left = combine(*left, *right, op);
    }
    return left;
  }

  bool starts_primary() const {
    const char c = peek();
    if (std::isalpha(static_cast<unsigned char>(c)) || c == '(' || c == '{') return true;
    if (c == '\\') {
      return starts("\\frac") || starts("\\sqrt") || starts("\\binom") || starts("\\pi") || starts("\\infty") ||
             starts("\\sin") || starts("\\cos") || starts("\\tan") || starts("\\ln") ||
             starts("\\log") || starts("\\exp");
    }
    return false;
  }

  std::optional<NumericValue> signed_factor() {
    if (++depth_ > kMaxDepth) return fail();
    std::optional<NumericValue> v;
    if (accept('-')) {
      auto inner = signed_factor();
      if (inner) v = combine(from_rational({0, 1}), *inner, '-');
    } else if (accept('+')) {
      v = signed_factor();
    } else {
      v = factor();
    }
    --depth_;
    return v ? v : fail();
  }

  std::optional<NumericValue> factor() {
    auto base = primary();
    if (!base) return fail();
    while (peek() == '!') {  // 5!, (n)! ; "!=" is not an answer
      ++pos_;
      base = factorial(*base);
      if (!base) return fail();
    }
    if (accept('^')) {
      std::optional<NumericValue> exponent;
      if (peek() == '{') {
        exponent = primary();
      } else if (peek() == '-' || peek() == '+') {
        exponent = signed_factor();
      } else if (std::isdigit(static_cast<unsigned char>(peek()))) {
        exponent = digit();  // 2^10 in LaTeX is 2^1 0; accept the usual sloppy 2^10 too
        while (exponent && std::isdigit(static_cast<unsigned char>(peek()))) {
          exponent = combine(combine(*exponent, from_rational({10, 1}), '*'), *digit(), '+');
        }
      } else {
        exponent = primary();
      }
      if (!exponent) return fail();
      base = power(*base, *exponent);
    }
    return base;
  }

  std::optional<NumericValue> digit() {
    const char c = peek();
    ++pos_;
    return from_rational({c - '0', 1});
  }

  std::optional<NumericValue> number() {
    const size_t start = pos_;
    while (std::isdigit(static_cast<unsigned char>(peek()))) ++pos_;
    size_t frac_start = pos_;
    if (peek() == '.') {
      ++pos_;
      frac_start = pos_;
      while (std::isdigit(static_cast<unsigned char>(peek()))) ++pos_;
    }
    std::string digits;
    for (char c : s_.substr(start, pos_ - start)) {
      if (c != '.') digits.push_back(c);
    }
    if (digits.empty()) return fail();
    const size_t decimals = s_.substr(start, pos_ - start).find('.') == std::string_view::npos
                                ? 0
                                : pos_ - frac_start;
    // Scientific notation: 1.5e-3, 2E10.
    int64_t exp10 = 0;
    if ((peek() == 'e' || peek() == 'E')) {
      size_t k = pos_ + 1;
      bool neg = false;
      if (k < s_.size() && (s_[k] == '-' || s_[k] == '+')) neg = s_[k++] == '-';
      if (k < s_.size() && std::isdigit(static_cast<unsigned char>(s_[k]))) {
        int64_t e = 0;
        while (k < s_.size() && std::isdigit(static_cast<unsigned char>(s_[k]))) {
          e = std::min<int64_t>(e * 10 + (s_[k] - '0'), 100000);
          ++k;
        }
        exp10 = neg ? -e : e;
        pos_ = k;
      }
    }
    const double approx = std::strtod(std::string(s_.substr(start, pos_ - start)).c_str(), nullptr);
    // Exact when the digits fit: value = digits * 10^(exp10 - decimals).
    const int64_t shift = exp10 - static_cast<int64_t>(decimals);
    if (digits.size() <= 18 && shift >= -18 && shift <= 18) {
      __int128 num = std::strtoll(digits.c_str(), nullptr, 10), den = 1;
      for (int64_t k = 0; k < std::llabs(shift); ++k) (shift > 0 ? num : den) *= 10;
      if (auto r = make_rational(num, den)) return from_rational(*r);
    }
    return from_double(approx, false, /*overflow=*/true);
  }

  std::optional<NumericValue> group() {
    if (accept('{')) {
      auto v = expression();
      if (!v || !accept('}')) return fail();
      return v;
    }
    // A single digit or letter: \frac12, \sqrt3.
    if (std::isdigit(static_cast<unsigned char>(peek()))) return digit();
    if (std::isalpha(static_cast<unsigned char>(peek()))) return variable();
    return fail();
  }

  std::optional<NumericValue> variable() {
    const char c = peek();
    ++pos_;
    // A fixed, irrational-looking value per letter and point, far from small integers.
    const double v = 0.5 + 0.137 * (c - 'A') + 1.618 * point_ + 0.0311 * (c % 7) * (point_ + 1);
    return from_double(v, true);
  }

  std::optional<NumericValue> primary() {
    if (++depth_ > kMaxDepth) return fail();
    std::optional<NumericValue> v;
    const char c = peek();
    if (std::isdigit(static_cast<unsigned char>(c)) ||
        (c == '.' && pos_ + 1 < s_.size() && std::isdigit(static_cast<unsigned char>(s_[pos_ + 1])))) {
      v = number();
    } else if (accept('(')) {
      v = expression();
      if (!v || !accept(')')) v = fail();
    } else if (c == '{') {
      v = group();
    } else if (accept_command("\\frac")) {
      auto a = group();
      auto b = a ? group() : std::nullopt;
      v = (a && b) ? std::optional(combine(*a, *b, '/')) : fail();
    } else if (accept_command("\\sqrt")) {
      std::optional<NumericValue> index;
      if (accept('[')) {
        index = expression();
        if (!index || !accept(']')) return fail();
      }
      auto radicand = group();
      if (!radicand) return fail();
      if (!index) {
        if (radicand->exact) {
          if (auto r = exact_sqrt(*radicand->exact)) {
            --depth_;
            return from_rational(*r);
          }
        }
        v = from_double(std::sqrt(radicand->approx), radicand->has_variables, radicand->overflow);
      } else {
        v = from_double(std::pow(radicand->approx, 1.0 / index->approx),
                        radicand->has_variables || index->has_variables);
      }
    } else if (accept_command("\\binom") || accept_command("\\dbinom") ||
               accept_command("\\tbinom")) {
      auto n = group();
      auto k = n ? group() : std::nullopt;
      v = (n && k) ? binomial(*n, *k) : std::nullopt;
      if (!v) return fail();
    } else if (accept_command("\\pi")) {
      v = from_double(M_PI, false);
    } else if (accept_command("\\infty")) {
      v = from_double(INFINITY, false);
    } else if (c == '\\') {
      static const char* kFunctions[] = {"\\sin", "\\cos", "\\tan", "\\ln", "\\log", "\\exp"};
      for (const char* f : kFunctions) {
        if (accept_command(f)) {
          auto arg = signed_factor();
          if (!arg) return fail();
          const std::string_view name(f);
          double x = arg->approx;
          double r = name == "\\sin" ? std::sin(x) : name == "\\cos" ? std::cos(x)
                   : name == "\\tan" ? std::tan(x) : name == "\\exp" ? std::exp(x)
                   : name == "\\ln" ? std::log(x) : std::log10(x);
          v = from_double(r, arg->has_variables);
          break;
        }
      }
      if (!v) return fail();
    } else if (std::isalpha(static_cast<unsigned char>(c))) {
      v = variable();
    } else {
      return fail();
    }
    --depth_;
    return v;
  }

  std::optional<NumericValue> fail() {
    ok_ = false;
    return std::nullopt;
  }

  std::string_view s_;
  int point_;
  size_t pos_ = 0;
  int depth_ = 0;
  bool ok_ = true;
};

}  // namespace

std::optional<NumericValue> evaluate_expression(std::string_view expr, int point) {
  if (expr.empty()) return std::nullopt;
  return Parser(expr, point).parse();
}

}  // namespace prefengine::plugins::graders
