// Finds which process listens on a loopback TCP port, from Linux's /proc. The supervisor uses it
// to tell its child's listener from another process that took the port first.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace fluxlit::supervisor::detail {

// Returns the socket inodes of the listeners in `table`, a /proc/net/tcp or /proc/net/tcp6 text,
// that accept connections to 127.0.0.1:`port`: those bound to 127.0.0.1, 0.0.0.0, :: or
// ::ffff:127.0.0.1 on that port.
// NOTE: a listener on :: with IPV6_V6ONLY set does not accept IPv4 connections but is listed.
std::vector<std::uint64_t> parse_loopback_listeners(std::string_view table, std::uint16_t port);

// Returns the process ids whose process group is `process_group`, from /proc/<pid>/stat.
std::vector<pid_t> find_group_members(pid_t process_group, const std::string& proc_root = "/proc");

enum class listener_owner {
  process_group,  // every listener on the port is a socket of a process in the group
  other_process,  // at least one listener on the port is not
  unknown,        // no listener was found, or /proc/net could not be read
};

// Compares the listeners on 127.0.0.1:`port` with the sockets that the processes of
// `process_group` have open (/proc/<pid>/fd). Blocks while it reads the stat file of every
// process and the descriptors of the group's members. Reading another user's /proc/<pid>/fd
// needs privileges, so the group should be this user's.
listener_owner find_listener_owner(std::uint16_t port, pid_t process_group,
                                   const std::string& proc_root = "/proc");

}  // namespace fluxlit::supervisor::detail
