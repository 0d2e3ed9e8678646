#pragma once
// UTF-8 helpers shared by the graders: validation, decoding to code points, and the character
// classes the graders need (Han ideographs, Chinese punctuation, ASCII words).
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace prefengine::plugins::graders {

// True when `text` is well-formed UTF-8 (no overlongs, no surrogates, nothing above U+10FFFF).
bool is_valid_utf8(std::string_view text);

// The code points of `text`; throws std::invalid_argument naming the byte offset when `text` is
// not valid UTF-8.
std::u32string decode_utf8(std::string_view text);

// The UTF-8 encoding of one code point / of a string of code points.
std::string encode_utf8(char32_t code_point);
std::string encode_utf8(std::u32string_view text);

// A CJK unified ideograph (the basic block, extensions A-G and the compatibility block).
bool is_han(char32_t c);

// Punctuation that ends a line of Chinese verse or a clause: ，。！？；：、 and their ASCII forms.
bool is_clause_punctuation(char32_t c);

// White space: ASCII white space, U+3000 ideographic space, U+00A0.
bool is_space(char32_t c);

// ASCII letters and digits.
bool is_ascii_alnum(char32_t c);

// `text` without leading and trailing ASCII white space.
std::string_view trim(std::string_view text);

// Lower-cased ASCII letters; other bytes unchanged.
std::string ascii_lower(std::string_view text);

// Full-width forms folded to ASCII: digits, letters and punctuation U+FF01-U+FF5E (１８ -> 18,
// （ -> (, ， -> ,), the ideographic space U+3000 to a space, × to *, ÷ to /, − (U+2212) to -.
// Works byte-wise: invalid UTF-8 passes through unchanged.
std::string fold_fullwidth(std::string_view text);

}  // namespace prefengine::plugins::graders
