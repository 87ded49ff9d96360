#include "core/log.h"

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace wattmoe {

namespace {
LogLevel from_env() {
  const char* e = std::getenv("WATTMOE_LOG");
  if (!e) return LogLevel::Info;
  if (!std::strcmp(e, "debug")) return LogLevel::Debug;
  if (!std::strcmp(e, "warn")) return LogLevel::Warn;
  if (!std::strcmp(e, "error")) return LogLevel::Error;
  if (!std::strcmp(e, "off")) return LogLevel::Off;
  return LogLevel::Info;
}
std::atomic<LogLevel>& level() {
  static std::atomic<LogLevel> l{from_env()};
  return l;
}
}  // namespace

LogLevel log_level() { return level().load(std::memory_order_relaxed); }
void set_log_level(LogLevel l) { level().store(l); }
void log_line(LogLevel l, const std::string& msg) {
  static const char* names[] = {"debug", "info", "warn", "error", ""};
  std::fprintf(stderr, "[%s] %s\n", names[int(l)], msg.c_str());
}

}  // namespace wattmoe
