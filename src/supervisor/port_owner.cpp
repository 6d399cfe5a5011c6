#include "supervisor/port_owner.hpp"

#include <unistd.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <system_error>

#include "supervisor/process_table.hpp"

namespace fluxlit::supervisor::detail {

namespace {

namespace fs = std::filesystem;

// st column value of a listening socket (TCP_LISTEN in the kernel's tcp_states.h).
constexpr std::string_view listen_state = "0A";

// Column of the socket inode in /proc/net/tcp, counted from 0 at the "sl" column.
constexpr std::size_t inode_column = 9;

std::vector<std::string_view> split_columns(std::string_view line) {
  std::vector<std::string_view> columns;
  std::size_t position = 0;
  while (position < line.size()) {
    position = line.find_first_not_of(" \t", position);
    if (position == std::string_view::npos) {
      break;
    }
    const std::size_t end = std::min(line.find_first_of(" \t", position), line.size());
    columns.push_back(line.substr(position, end - position));
    position = end;
  }
  return columns;
}

template <typename Number>
bool parse_number(std::string_view text, int base, Number& value) {
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value, base);
  return error == std::errc() && end == text.data() + text.size();
}

// Decodes the kernel's address column: each 32-bit word of the address printed as %08X in host
// byte order, so copying the parsed words into memory restores the address bytes.
bool parse_address(std::string_view hex, std::vector<unsigned char>& bytes) {
  if (hex.size() != 8 && hex.size() != 32) {
    return false;
  }
  bytes.assign(hex.size() / 2, 0);
  for (std::size_t word = 0; word < hex.size() / 8; ++word) {
    std::uint32_t value = 0;
    if (!parse_number(hex.substr(word * 8, 8), 16, value)) {
      return false;
    }
    std::memcpy(bytes.data() + word * 4, &value, sizeof(value));
  }
  return true;
}

bool accepts_loopback_connections(const std::vector<unsigned char>& address) {
  static constexpr std::array<unsigned char, 4> loopback_v4{127, 0, 0, 1};
  static constexpr std::array<unsigned char, 16> mapped_loopback{0, 0, 0,    0,    0, 0, 0, 0,
                                                                 0, 0, 0xff, 0xff, 127, 0, 0, 1};
  const bool all_zero = std::all_of(address.begin(), address.end(), [](unsigned char b) {
    return b == 0;
  });
  if (all_zero) {
    return true;
  }
  if (address.size() == 4) {
    return std::equal(address.begin(), address.end(), loopback_v4.begin());
  }
  return std::equal(address.begin(), address.end(), mapped_loopback.begin());
}

bool read_text(const fs::path& path, std::string& text) {
  // libstdc++'s filebuf throws on a read error whatever the stream's exception mask, and this
  // runs in an I/O handler, where nothing may throw.
  try {
    std::ifstream input(path);
    if (!input) {
      return false;
    }
    std::ostringstream contents;
    contents << input.rdbuf();
    text = contents.str();
    return true;
  } catch (const std::ios_base::failure&) {
    return false;
  }
}

// Adds the inodes of the sockets that process `pid` has open to `inodes`.
void collect_socket_inodes(const fs::path& fd_directory, std::set<std::uint64_t>& inodes) {
  std::error_code error;
  for (fs::directory_iterator it(fd_directory, error), end; !error && it != end;
       it.increment(error)) {
    std::error_code link_error;
    const std::string target = fs::read_symlink(it->path(), link_error).string();
    constexpr std::string_view prefix = "socket:[";
    if (link_error || !target.starts_with(prefix) || !target.ends_with("]")) {
      continue;
    }
    std::uint64_t inode = 0;
    const std::string_view digits =
        std::string_view(target).substr(prefix.size(), target.size() - prefix.size() - 1);
    if (parse_number(digits, 10, inode)) {
      inodes.insert(inode);
    }
  }
}

}  // namespace

std::vector<std::uint64_t> parse_loopback_listeners(std::string_view table, std::uint16_t port) {
  std::vector<std::uint64_t> inodes;
  std::vector<unsigned char> address;
  while (!table.empty()) {
    const std::size_t newline = table.find('\n');
    const std::string_view line = table.substr(0, newline);
    table.remove_prefix(newline == std::string_view::npos ? table.size() : newline + 1);

    const std::vector<std::string_view> columns = split_columns(line);
    if (columns.size() <= inode_column || columns[3] != listen_state) {
      continue;  // the header line, or a socket that is not listening
    }
    const std::string_view local = columns[1];
    const std::size_t colon = local.find(':');
    std::uint16_t local_port = 0;
    std::uint64_t inode = 0;
    if (colon == std::string_view::npos || !parse_number(local.substr(colon + 1), 16, local_port) ||
        !parse_address(local.substr(0, colon), address) ||
        !parse_number(columns[inode_column], 10, inode)) {
      continue;
    }
    if (local_port == port && accepts_loopback_connections(address)) {
      inodes.push_back(inode);
    }
  }
  return inodes;
}

std::vector<pid_t> find_group_members(pid_t process_group, const std::string& proc_root) {
  std::vector<pid_t> members;
  for (const pid_t pid : list_processes(proc_root)) {
    // A process that exits during the scan has no status any more and is skipped.
    const std::optional<process_status> status = read_process_status(pid, proc_root);
    if (status && status->process_group == process_group) {
      members.push_back(pid);
    }
  }
  return members;
}

listener_owner find_listener_owner(std::uint16_t port, pid_t process_group,
                                   const std::string& proc_root) {
  std::vector<std::uint64_t> listeners;
  for (const char* table_name : {"net/tcp", "net/tcp6"}) {
    std::string table;
    if (read_text(fs::path(proc_root) / table_name, table)) {
      const std::vector<std::uint64_t> found = parse_loopback_listeners(table, port);
      listeners.insert(listeners.end(), found.begin(), found.end());
    }
  }
  if (listeners.empty()) {
    return listener_owner::unknown;
  }

  std::set<std::uint64_t> group_sockets;
  for (const pid_t pid : find_group_members(process_group, proc_root)) {
    collect_socket_inodes(fs::path(proc_root) / std::to_string(pid) / "fd", group_sockets);
  }
  const bool all_owned = std::all_of(listeners.begin(), listeners.end(), [&](std::uint64_t inode) {
    return group_sockets.contains(inode);
  });
  return all_owned ? listener_owner::process_group : listener_owner::other_process;
}

}  // namespace fluxlit::supervisor::detail
