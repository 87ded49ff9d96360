// Telemetry traces on disk: one Sample per line, JSONL (default) or CSV (when the file name ends in .csv).
// Absent fields are omitted (JSONL) or empty cells (CSV). Numbers are written in shortest round-trip form, so
// reading a trace back gives bitwise the samples that were written.
#pragma once
#include <cstdio>
#include <string>
#include <vector>

#include "energy/sensor.h"
#include "io/json.h"

namespace wattmoe {

Json sample_to_json(const Sample& s);
// `where` ("trace.jsonl:12") prefixes every error, which names the field and what was expected.
Sample sample_from_json(const Json& j, const std::string& where);

std::string sample_csv_header();
std::string sample_to_csv(const Sample& s);

bool trace_path_is_csv(const std::string& path);

// The energy an energy counter says was used over a run of readings: the sum of its steps forward. A step backwards
// is a wrap (unwrapped when wrap_j, the counter's range, is known: Capabilities::counter_wrap_j) or a reset; an
// unknown one is left out and counted in `backwards`, so a report can say so instead of printing last − first < 0.
// NaN readings (no counter value) are skipped.
struct CounterTotal {
  double wrap_j = 0;
  double joules = 0;
  int64_t samples = 0, backwards = 0;
  double first_backwards_s = kNaN;  // sample time of the first step backwards, when add() is given times
  void add(double energy_j, double time_s = kNaN);

 private:
  double last_ = kNaN;
};

// Reads a whole trace. Errors name file:line and the field; times must not go backwards.
std::vector<Sample> read_trace(const std::string& path);
// The same on a trace's text (JSONL, or CSV with a header line); `path` names it in errors (fuzz/trace_fuzz.cpp).
std::vector<Sample> parse_trace(std::string_view text, bool csv, const std::string& path);

// Appends samples to a trace file, one flushed line each (a killed recorder leaves whole lines behind).
class TraceWriter {
 public:
  explicit TraceWriter(const std::string& path);  // truncates; Error naming the file if it cannot be opened
  ~TraceWriter();
  TraceWriter(const TraceWriter&) = delete;
  TraceWriter& operator=(const TraceWriter&) = delete;
  void write(const Sample& s);
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::FILE* f_ = nullptr;
  bool csv_ = false;
};

}  // namespace wattmoe
