// Who may talk to the server: the API key (a file in the data directory) and the checks
// every request passes before it reaches a handler.
//
// The key is 32 random bytes from getrandom(), written as 64 lowercase hex digits to
// <data_dir>/api_key with mode 0600 (atomically: a crash leaves the old key or the new one).
// Thread safety: the functions keep no state; key files are not locked (rotating while
// a server starts may leave that server with the previous key until its restart).
#pragma once

#include <string>
#include <string_view>

#include "platform/status.h"

namespace hearth::app {

// <data_dir>/api_key.
std::string api_key_path();
// The stored key; an error when there is none yet or it is malformed.
Expected<std::string> read_api_key();
// The stored key, creating one (and the data directory, mode 0700) when there is none.
Expected<std::string> load_or_create_api_key();
// Replaces the stored key with a new random one and returns it.
Expected<std::string> rotate_api_key();
// 64 hex digits from 32 bytes of getrandom().
Expected<std::string> generate_api_key();

// True when `authorization` is "Bearer KEY" for this key (compared in constant time).
bool bearer_matches(std::string_view authorization, std::string_view key);

// True for addresses that only this machine can reach: 127.0.0.0/8, ::1, "localhost".
bool is_loopback_address(std::string_view addr);

// DNS-rebinding defence: the Host header must be "localhost", an IP literal (127.0.0.1,
// [::1], the LAN address of a --listen server) or the bound address, with any port. A page
// on a DNS name that resolves to 127.0.0.1 sends that name and is refused.
bool host_allowed(std::string_view host_header, std::string_view bound_address);

}  // namespace hearth::app
