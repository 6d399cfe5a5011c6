#include "cli/setting_flags.hpp"

#include <string>

namespace fluxlit::cli {

namespace {

std::string unit_word(std::string_view unit) {
  if (unit == "ms") {
    return "milliseconds";
  }
  return std::string(unit);
}

std::string value_name(const config::key_info& key) {
  if (key.type == "integer") {
    if (key.unit == "ms") {
      return "MS";
    }
    return key.unit == "bytes" ? "BYTES" : "COUNT";
  }
  if (key.type == "port") {
    return "PORT";
  }
  if (key.type == "list") {
    return "LIST";
  }
  if (key.type == "path") {
    return "PATH";
  }
  return "TEXT";
}

// "Maximum total size of request headers. Unit: bytes. Default: 65536. Env: FLUXLIT_...".
std::string help_text(const config::key_info& key) {
  static const config::settings defaults;
  const std::string default_text = key.format(defaults);
  std::string help(key.description);
  help += ".";
  if (!key.unit.empty()) {
    help += " Unit: " + unit_word(key.unit) + ".";
  }
  help += " Default: " + (default_text.empty() ? std::string("empty") : default_text) + ".";
  help += " Env: " + std::string(key.env) + ".";
  return help;
}

std::string kebab_name(std::string_view name) {
  std::string kebab(name);
  for (char& c : kebab) {
    if (c == '_') {
      c = '-';
    }
  }
  return kebab;
}

void add_bool_flag(CLI::App& command, const config::key_info& key, config::cli_values& given) {
  std::string spec(key.cli_flag);
  if (!key.name.starts_with("no_")) {
    spec += ",!--no-" + kebab_name(key.name);
  }
  // CLI11 turns a negated flag into "false" and passes any "=value" through, so `given`
  // receives the text that key_info::assign parses. The last occurrence wins.
  command.add_flag(spec)
      ->description(help_text(key))
      ->each(
          [&given, name = std::string(key.name)](const std::string& text) { given[name] = text; });
}

// A list flag also takes its singular form, repeated (`--reload-dir a --reload-dir b`), the
// way uvicorn spells its reload options.
std::string flag_names(const config::key_info& key) {
  std::string names(key.cli_flag);
  if (key.type == "list" && names.ends_with("s")) names += "," + names.substr(0, names.size() - 1);
  return names;
}

void add_value_option(CLI::App& command, const config::key_info& key, config::cli_values& given) {
  CLI::Option* option = command.add_option(flag_names(key))
                            ->description(help_text(key))
                            ->type_name(value_name(key));
  const std::string name(key.name);
  if (key.type == "list") {
    option->multi_option_policy(CLI::MultiOptionPolicy::TakeAll)
        ->each([&given, name](const std::string& text) {
          std::string& joined = given[name];
          if (!joined.empty()) {
            joined += ",";
          }
          joined += text;
        });
    return;
  }
  option->multi_option_policy(CLI::MultiOptionPolicy::TakeLast)
      ->each([&given, name](const std::string& text) { given[name] = text; });
}

}  // namespace

void add_setting_flags(CLI::App& command, config::cli_values& given) {
  for (const config::key_info& key : config::keys()) {
    if (key.cli_flag.empty()) {
      continue;
    }
    if (key.type == "bool") {
      add_bool_flag(command, key, given);
    } else {
      add_value_option(command, key, given);
    }
  }
}

void add_target_argument(CLI::App& command, config::cli_values& given) {
  const config::key_info* key = config::find_key("target");
  command.add_option("target")
      ->description(help_text(*key))
      ->type_name("TARGET")
      ->each([&given](const std::string& text) { given["target"] = text; });
}

}  // namespace fluxlit::cli
