// Logging to stderr with a level set once (WATTMOE_LOG=debug|info|warn|error or set_log_level).
#pragma once
#include <fmt/format.h>

namespace wattmoe {

enum class LogLevel { Debug, Info, Warn, Error, Off };
LogLevel log_level();
void set_log_level(LogLevel l);
void log_line(LogLevel l, const std::string& msg);

template <class... A>
void log_info(fmt::format_string<A...> f, A&&... a) {
  if (log_level() <= LogLevel::Info) log_line(LogLevel::Info, fmt::format(f, std::forward<A>(a)...));
}
template <class... A>
void log_warn(fmt::format_string<A...> f, A&&... a) {
  if (log_level() <= LogLevel::Warn) log_line(LogLevel::Warn, fmt::format(f, std::forward<A>(a)...));
}
template <class... A>
void log_debug(fmt::format_string<A...> f, A&&... a) {
  if (log_level() <= LogLevel::Debug) log_line(LogLevel::Debug, fmt::format(f, std::forward<A>(a)...));
}

}  // namespace wattmoe
