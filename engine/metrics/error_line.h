#pragma once
// The one line a user sees for an exception. LibTorch's c10::Error::what() carries a C++
// backtrace ("Exception raised from ... frame #0 ..."); the CLI prints error_line() instead and the
// full what() only at --log-level debug (engine/cli/commands.cpp, main_entry).
#include <exception>
#include <string>

namespace prefengine {

// c10::Error: what_without_backtrace(); any other exception: what(). Then anything from
// "Exception raised from" on is dropped (a c10 message wrapped into another exception's text),
// and line breaks are folded into "; " so the result is a single line.
std::string error_line(const std::exception& e);
std::string error_line(const std::string& message);

// True when the exception (or a message it wraps) carries more than error_line() shows: the
// CLI then logs what() at debug level.
bool has_backtrace(const std::exception& e);

}  // namespace prefengine
