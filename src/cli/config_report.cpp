#include "cli/config_report.hpp"

#include <filesystem>

#include "cli/redaction.hpp"
#include "cli/text_table.hpp"
#include "config/value_text.hpp"
#include "fluxlit/asgi/bridge.hpp"
#include "fluxlit/config/target.hpp"
#include "fluxlit/supervisor/streamlit_config.hpp"
#include "supervisor/streamlit_command.hpp"

namespace fluxlit::cli {

namespace {

// Shown in place of the Streamlit child's port, which FluxLit picks when it starts the child.
constexpr std::string_view child_port_placeholder = "<free loopback port>";

nlohmann::ordered_json typed_value(const config::key_info& key, const config::settings& values) {
  const std::string text = key.format(values);
  if (is_secret_name(key.name) && !text.empty()) {
    return std::string(redacted_text);
  }
  if (key.type == "integer" || key.type == "port") {
    return config::detail::parse_unsigned(text, key.minimum, key.maximum, key.unit);
  }
  if (key.type == "bool") {
    return config::detail::parse_bool(text);
  }
  if (key.type == "list") {
    nlohmann::ordered_json entries = nlohmann::ordered_json::array();
    for (const std::string& entry : config::detail::parse_list(text)) {
      entries.push_back(redact_url_passwords(entry));
    }
    return entries;
  }
  return redact_url_passwords(text);
}

// The host in the base URL that pages use to call the API over loopback: a wildcard listen
// address is reached through 127.0.0.1, and an IPv6 address needs brackets.
std::string api_host(const std::string& host) {
  if (host == "0.0.0.0" || host == "::") {
    return "127.0.0.1";
  }
  return host.find(':') != std::string::npos ? "[" + host + "]" : host;
}

std::string api_base_url(const config::settings& values) {
  const std::string port =
      values.port == 0 ? std::string("<port chosen at start>") : std::to_string(values.port);
  return "http://" + api_host(values.host) + ":" + port + values.api_prefix;
}

derived_value unavailable(std::string name, std::string reason) {
  return {std::move(name), nullptr, std::move(reason)};
}

derived_value app_directory(const config::settings& values) {
  try {
    const auto target =
        config::parse_target(values.target, std::filesystem::current_path().string());
    return {"app_directory", target.app_directory, ""};
  } catch (const config::config_error& error) {
    return unavailable("app_directory", error.what());
  }
}

// The directory Streamlit starts in: the app directory, or the working directory when the
// target cannot be resolved.
std::string streamlit_directory(const derived_value& app_directory) {
  return app_directory.value.is_string() ? app_directory.value.get<std::string>()
                                         : std::filesystem::current_path().string();
}

// The command line of the Streamlit child as the supervisor builds it, with a placeholder for
// the port that is only picked at start.
derived_value streamlit_command(const config::settings& values, const std::string& python,
                                const std::string& app_directory) {
  if (values.no_ui) {
    return unavailable("streamlit_command", "no_ui is on, so Streamlit is not started");
  }
  supervisor::streamlit_options options;
  options.python = python;
  options.base_url_path = values.root_path;
  options.working_directory = app_directory;
  try {
    options.entry_script = asgi::python_package_directory() + "/fluxlit/_streamlit_entry.py";
  } catch (const asgi::startup_error& error) {
    return unavailable("streamlit_command", error.what());
  }
  // Like the supervisor, pass an empty base path when Streamlit's own configuration sets one
  // and root_path is empty, so that the child still serves at "/".
  bool pass_empty_base_url_path = false;
  for (const auto& conflict : supervisor::check_streamlit_config(options).conflicts) {
    pass_empty_base_url_path |= conflict.key == "server.baseUrlPath" && values.root_path.empty();
  }
  std::vector<std::string> arguments =
      supervisor::detail::make_streamlit_arguments(options, 0, pass_empty_base_url_path);
  const auto port_flag = std::find(arguments.begin(), arguments.end(), "--server.port");
  if (port_flag != arguments.end() && port_flag + 1 != arguments.end()) {
    *(port_flag + 1) = child_port_placeholder;
  }
  return {"streamlit_command", redact_url_passwords(supervisor::detail::join_arguments(arguments)),
          ""};
}

std::vector<derived_value> derive_values(const config::settings& values) {
  std::vector<derived_value> derived;
  derived.push_back({"public_mount", values.root_path + "/", ""});
  derived.push_back({"api_base_url", api_base_url(values), ""});
  derived.push_back(app_directory(values));
  const std::string directory = streamlit_directory(derived.back());
  std::string python;
  try {
    python = asgi::choose_interpreter(values.python);
    derived.push_back({"interpreter", python, ""});
  } catch (const asgi::startup_error& error) {
    derived.push_back(unavailable("interpreter", error.what()));
    derived.push_back(unavailable("streamlit_command", "the interpreter is unknown"));
    return derived;
  }
  derived.push_back(streamlit_command(values, python, directory));
  return derived;
}

std::string display_text(const nlohmann::ordered_json& value) {
  if (value.is_string()) {
    return value.get<std::string>();
  }
  if (value.is_array()) {
    std::vector<std::string> entries;
    for (const auto& entry : value) {
      entries.push_back(entry.get<std::string>());
    }
    return config::detail::join_list(entries);
  }
  return value.dump();
}

}  // namespace

configuration_report make_configuration_report(const config::loaded_settings& loaded) {
  configuration_report report;
  report.file = loaded.file;
  for (const config::key_info& key : config::keys()) {
    reported_setting setting;
    setting.key = &key;
    setting.value = typed_value(key, loaded.values);
    setting.text = display_text(setting.value);
    const auto source = loaded.sources.find(key.name);
    setting.source = source != loaded.sources.end() ? source->second.where : "default";
    report.settings.push_back(std::move(setting));
  }
  report.derived = derive_values(loaded.values);
  report.warnings = config::collect_warnings(loaded, std::filesystem::current_path().string());
  return report;
}

nlohmann::ordered_json configuration_json(const configuration_report& report) {
  nlohmann::ordered_json document;
  nlohmann::ordered_json& settings = document["settings"] = nlohmann::ordered_json::object();
  for (const reported_setting& setting : report.settings) {
    settings[std::string(setting.key->name)] = {{"value", setting.value},
                                                {"source", setting.source}};
  }
  nlohmann::ordered_json& derived = document["derived"] = nlohmann::ordered_json::object();
  derived["config_file"] =
      report.file.empty() ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(report.file);
  for (const derived_value& value : report.derived) {
    derived[value.name] = value.value;
  }
  nlohmann::ordered_json& warnings = document["warnings"] = nlohmann::ordered_json::array();
  for (const config::config_warning& warning : report.warnings) {
    warnings.push_back({{"code", warning.code}, {"message", warning.message}});
  }
  return document;
}

std::string configuration_text(const configuration_report& report) {
  std::string text = "Configuration file: ";
  text += report.file.empty() ? "none" : report.file;
  text += "\n\nSettings (value, then where it came from):\n";
  std::vector<table_row> rows;
  for (const reported_setting& setting : report.settings) {
    rows.push_back({std::string(setting.key->name), setting.text, setting.source});
  }
  text += format_table(rows, 2);

  text += "\nDerived values:\n";
  rows.clear();
  for (const derived_value& value : report.derived) {
    const std::string shown = value.value.is_null()
                                  ? "(unavailable: " + value.unavailable_reason + ")"
                                  : display_text(value.value);
    rows.push_back({value.name, shown});
  }
  text += format_table(rows, 2);

  text += "\nWarnings:";
  if (report.warnings.empty()) {
    return text + " none\n";
  }
  text += "\n";
  rows.clear();
  for (const config::config_warning& warning : report.warnings) {
    rows.push_back({warning.code, warning.message});
  }
  return text + format_table(rows, 2);
}

}  // namespace fluxlit::cli
