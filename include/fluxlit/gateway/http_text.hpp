// Small helpers that write HTTP/1.1 response heads as text.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace fluxlit::gateway {

std::string_view reason_phrase(int status);

// True for statuses that never carry a body (1xx, 204, 304).
bool status_forbids_body(int status);

// True for statuses whose responses must not carry Content-Length (1xx, 204), as RFC 9110
// section 8.6 requires. A 304 may carry the length of the response it stands for.
bool status_forbids_content_length(int status);

void append_status_line(std::string& out, int status, std::string_view reason = {});
void append_header(std::string& out, std::string_view name, std::string_view value);

// The current time as an IMF-fixdate for the Date header, formatted once per second.
const std::string& http_date();

// "1a\r\n" framing of one chunk of `size` bytes.
std::string chunk_header(std::size_t size);

}  // namespace fluxlit::gateway
