// Interned event names of one project: name <-> dense global code, in memory only.
// Segments carry their own name tables; codes are assigned as segments load and events
// arrive. Threading: all methods are thread-safe.
#pragma once

#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace ns {

class EventDict {
 public:
  uint32_t Intern(std::string_view name) {
    std::lock_guard lk(mu_);
    auto it = index_.find(std::string(name));
    if (it != index_.end()) return it->second;
    uint32_t code = static_cast<uint32_t>(names_.size());
    names_.emplace_back(name);
    index_.emplace(names_.back(), code);
    return code;
  }
  std::optional<uint32_t> Find(std::string_view name) const {
    std::lock_guard lk(mu_);
    auto it = index_.find(std::string(name));
    if (it == index_.end()) return std::nullopt;
    return it->second;
  }
  std::string Name(uint32_t code) const {
    std::lock_guard lk(mu_);
    return code < names_.size() ? names_[code] : std::string();
  }
  std::vector<std::string> Names() const {
    std::lock_guard lk(mu_);
    return names_;
  }
  size_t size() const {
    std::lock_guard lk(mu_);
    return names_.size();
  }

 private:
  mutable std::mutex mu_;
  std::vector<std::string> names_;
  std::unordered_map<std::string, uint32_t> index_;
};

}  // namespace ns
