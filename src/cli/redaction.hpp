// Hiding secrets in settings before they are printed by `fluxlit config` and `fluxlit doctor`.
#pragma once

#include <string>
#include <string_view>

namespace fluxlit::cli {

// The text that replaces a hidden secret.
inline constexpr std::string_view redacted_text = "***";

// Returns true when a setting's name suggests that its value is a secret: one of its words
// (separated by "_", "-" or ".") is password, passwd, secret, token, credential(s), key, apikey,
// auth or private ("api_key", "SECRET_TOKEN"). Letter case does not matter.
bool is_secret_name(std::string_view name);

// Returns `value` with the password of every URL in it ("scheme://user:password@host")
// replaced by redacted_text. Text without such a URL is returned unchanged.
std::string redact_url_passwords(std::string_view value);

// Returns redacted_text for a non-empty value of a secret setting, else the value with URL
// passwords hidden.
std::string redact_setting(std::string_view name, std::string_view value);

}  // namespace fluxlit::cli
