#include "engine/io/durable_file.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <stdexcept>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/crc.hpp>

namespace prefengine {
namespace {

[[noreturn]] void fail(const std::string& path, const char* what, int error) {
  throw std::runtime_error(path + ": cannot " + what + ": " + std::strerror(error));
}

std::string parent_of(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

// An open file descriptor that is closed (unchecked) when an error leaves the scope early.
class Fd {
 public:
  Fd(const std::string& path, int flags) : path_(path), fd_(::open(path.c_str(), flags | O_CLOEXEC, 0644)) {
    if (fd_ < 0) fail(path, "write", errno);
  }
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;

  void write_all(const std::string& bytes) {
    const char* data = bytes.data();
    size_t left = bytes.size();
    while (left > 0) {
      const ssize_t n = ::write(fd_, data, left);
      if (n < 0) {
        if (errno == EINTR) continue;
        fail(path_, "write", errno);
      }
      if (n == 0) fail(path_, "write", EIO);
      data += n;
      left -= static_cast<size_t>(n);
    }
  }
  void sync() {
    if (::fsync(fd_) != 0) fail(path_, "write", errno);
  }
  void close() {
    const int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0 && errno != EINTR) fail(path_, "write", errno);
  }

 private:
  std::string path_;
  int fd_;
};

}  // namespace

void write_file_synced(const std::string& path, const std::string& bytes) {
  Fd file(path, O_WRONLY | O_CREAT | O_TRUNC);
  file.write_all(bytes);
  file.sync();
  file.close();
}

void write_file_durably(const std::string& path, const std::string& bytes) {
  const std::string tmp = path + ".tmp";
  try {
    write_file_synced(tmp, bytes);
  } catch (const std::runtime_error&) {
    ::unlink(tmp.c_str());  // give the space back; the old `path` is untouched
    throw;
  }
  rename_durably(tmp, path);
}

void append_file_checked(const std::string& path, const std::string& bytes) {
  Fd file(path, O_WRONLY | O_CREAT | O_APPEND);
  file.write_all(bytes);
  file.close();
}

void sync_path(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail(path, "sync", errno);
  const int error = ::fsync(fd) != 0 ? errno : 0;
  ::close(fd);
  // Some file systems cannot fsync a folder (EINVAL): nothing more can be done there.
  if (error != 0 && error != EINVAL) fail(path, "write", error);
}

void rename_durably(const std::string& from, const std::string& to) {
  if (std::rename(from.c_str(), to.c_str()) != 0) {
    const int error = errno;
    fail(to, (std::string("rename ") + from + " into place").c_str(), error);
  }
  sync_path(parent_of(to));
  if (parent_of(from) != parent_of(to)) sync_path(parent_of(from));
}

std::string read_file_bytes(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail(path, "read", errno);
  std::string bytes;
  char buffer[1 << 16];
  for (;;) {
    const ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n < 0) {
      if (errno == EINTR) continue;
      const int error = errno;
      ::close(fd);
      fail(path, "read", error);
    }
    if (n == 0) break;
    bytes.append(buffer, static_cast<size_t>(n));
  }
  ::close(fd);
  return bytes;
}

uint32_t crc32c(const std::string& bytes) {
  boost::crc_optimal<32, 0x1EDC6F41, 0xFFFFFFFF, 0xFFFFFFFF, true, true> crc;
  crc.process_bytes(bytes.data(), bytes.size());
  return crc.checksum();
}

std::string crc32c_hex(const std::string& bytes) {
  char text[9];
  std::snprintf(text, sizeof text, "%08x", static_cast<unsigned>(crc32c(bytes)));
  return text;
}

}  // namespace prefengine
