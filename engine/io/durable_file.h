#pragma once
// Writes that survive a crash and report a full disk: every write and close is checked, data is
// fsynced before a rename publishes it, and the folder is fsynced after. Every error is a
// std::runtime_error "PATH: cannot write: <strerror>" (e.g. "No space left on device").
#include <cstdint>
#include <string>

namespace prefengine {

// Replaces `path` with `bytes`: writes PATH.tmp, fsyncs it, renames it over `path`, fsyncs the
// folder. A crash leaves the old content or the new one, never a mix.
void write_file_durably(const std::string& path, const std::string& bytes);

// Creates (truncates) `path` with `bytes` and fsyncs it; no rename (for files inside a folder
// that is published as a whole by rename_durably).
void write_file_synced(const std::string& path, const std::string& bytes);

// Appends `bytes` to `path` (created when absent), every write checked; no fsync.
void append_file_checked(const std::string& path, const std::string& bytes);

// fsyncs a file or a folder.
void sync_path(const std::string& path);

// Renames `from` to `to` and fsyncs the folder of `to` (and of `from` when it differs).
void rename_durably(const std::string& from, const std::string& to);

// The whole content of `path`; std::runtime_error "PATH: cannot read: <strerror>".
std::string read_file_bytes(const std::string& path);

// CRC-32C (Castagnoli, the iSCSI/ext4 polynomial; boost/crc.hpp) of `bytes`, and the same as 8
// hex digits.
uint32_t crc32c(const std::string& bytes);
std::string crc32c_hex(const std::string& bytes);

}  // namespace prefengine
