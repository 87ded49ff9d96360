#include "serve/job.h"

#include <chrono>

namespace wattmoe {

bool Job::next(std::string& text, double timeout_s) {
  std::unique_lock<std::mutex> lk(mu_);
  cv_.wait_for(lk, std::chrono::duration<double>(timeout_s), [&] { return done_ || taken_ < text_.size(); });
  const bool news = done_ || taken_ < text_.size();
  text.append(text_, taken_, std::string::npos);
  taken_ = text_.size();
  return news;
}

void Job::wait_done() {
  std::unique_lock<std::mutex> lk(mu_);
  cv_.wait(lk, [&] { return done_; });
}

bool Job::done() const {
  std::lock_guard<std::mutex> lk(mu_);
  return done_;
}

void Job::cancel() {
  std::lock_guard<std::mutex> lk(mu_);
  cancelled_ = true;
}

bool Job::cancelled() const {
  std::lock_guard<std::mutex> lk(mu_);
  return cancelled_;
}

std::string Job::finish_reason() const {
  std::lock_guard<std::mutex> lk(mu_);
  return reason_;
}

std::string Job::error() const {
  std::lock_guard<std::mutex> lk(mu_);
  return error_;
}

std::string Job::text() const {
  std::lock_guard<std::mutex> lk(mu_);
  return text_;
}

JobUsage Job::usage() const {
  std::lock_guard<std::mutex> lk(mu_);
  return usage_;
}

void Job::emit(const std::string& piece) {
  if (piece.empty()) return;
  {
    std::lock_guard<std::mutex> lk(mu_);
    text_ += piece;
  }
  cv_.notify_all();
}

void Job::finish(const std::string& reason, const JobUsage& u, const std::string& error) {
  {
    std::lock_guard<std::mutex> lk(mu_);
    if (done_) return;
    done_ = true, reason_ = reason, usage_ = u, error_ = error;
  }
  cv_.notify_all();
}

}  // namespace wattmoe
