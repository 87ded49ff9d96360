#include "io/json.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/safetensors.h"
#include "model/checkpoint.h"

#include "io_test_util.h"

namespace wattmoe {
namespace {

using test::expect_error;
using test::TempDir;

TEST(Json, RoundTripsAtomically) {
  TempDir d;
  const std::string path = d.file("c.json");
  Json j = {{"rope_theta", 1e6}, {"layers", {1, 2, 3}}, {"name", "ü"}};
  write_json_file(path, j);
  EXPECT_EQ(read_json_file(path), j);
  EXPECT_NE(::access((path + ".tmp").c_str(), F_OK), 0);
  write_json_file(path, Json{{"v", 2}}, -1);  // overwrite in place
  EXPECT_EQ(read_text_file(path), "{\"v\":2}\n");
  EXPECT_TRUE(file_exists(path));
  EXPECT_FALSE(file_exists(d.file("none.json")));
  EXPECT_FALSE(file_exists(d.path()));
}

TEST(Json, ErrorsNameTheFile) {
  TempDir d;
  const std::string bad = d.file("bad.json");
  test::write_bytes(bad, "{\n  \"a\": 1,\n  \"b\": tru}");
  expect_error([&] { read_json_file(bad); }, bad + ": ", "malformed JSON: ");
  expect_error([&] { read_json_file(bad); }, bad + ": ", "line 3, column");
  expect_error([&] { read_json_file(bad); }, bad + ": ", "(byte 23)");
  expect_error([&] { read_json_file(d.file("none.json")); }, d.file("none.json") + ": ",
               "cannot open (No such file or directory)");
  expect_error([&] { read_text_file(d.path()); }, d.path() + ": ", "not a regular file (a directory)");
  expect_error([&] { write_json_file(d.file("no/dir.json"), Json::object()); }, d.file("no/dir.json") + ": ",
               "cannot create temporary file");
  expect_error([&] { write_json_file(d.file("u.json"), Json("\xff")); }, d.file("u.json") + ": ",
               "cannot write JSON");
}

// Every JSON file is read through one function with a nesting limit: 10,000 nested arrays are an Error naming the
// file, 128 levels still parse.
TEST(Json, NestingDeeperThan128IsAnError) {
  TempDir d;
  const std::string deep = d.file("deep.json"), ok = d.file("ok.json");
  test::write_bytes(deep, std::string(10000, '[') + std::string(10000, ']'));
  expect_error([&] { read_json_file(deep); }, deep + ": ", "nested more than 128 levels");
  // Brackets inside strings do not count.
  test::write_bytes(ok, std::string(127, '[') + "\"[[[[{{{{\\\"\"" + std::string(127, ']'));
  EXPECT_NO_THROW(read_json_file(ok));
  test::write_bytes(ok, "{\"a\":" + std::string(127, '[') + std::string(127, ']') + "}");
  EXPECT_NO_THROW(read_json_file(ok));
  expect_error([&] { parse_json(std::string(129, '{'), "line 3"); }, "line 3: ", "nested more than 128 levels");
}

// A FIFO where a file is expected blocked open(2) forever (no writer); every reader now opens without blocking and
// refuses anything but a regular file, naming what it is.
TEST(Json, FifoOrDeviceIsRefusedNotWaitedOn) {
  TempDir d;
  const std::string fifo = d.file("config.json");
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0644), 0);
  expect_error([&] { read_json_file(fifo); }, fifo + ": ", "not a regular file (a FIFO)");
  expect_error([&] { read_text_file("/dev/zero"); }, "/dev/zero: ", "not a regular file (a character device)");
  expect_error([&] { SafetensorsFile::open(fifo); }, fifo + ": ", "not a regular file (a FIFO)");
  expect_error([&] { load_model<float>(d.path()); }, fifo + ": ", "not a regular file (a FIFO)");
}

}  // namespace
}  // namespace wattmoe
