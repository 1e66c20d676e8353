#include "grub_config.h"

#include <cctype>
#include <charconv>
#include <map>
#include <sstream>

#include "boot_entry.h"

namespace ntc::vmm {

namespace {

using Variables = std::map<std::string, std::string, std::less<>>;

// GRUB script split into simple commands (ended by a newline or ';'), each a
// list of words with quotes and backslashes removed and variables expanded.
class Lexer {
public:
    explicit Lexer(std::string_view text) : text_(text) {}

    // The next command's words, with the variables as they are now; empty at
    // the end of the text.
    std::vector<std::string> next(const Variables& variables) {
        std::vector<std::string> words;
        while (pos_ < text_.size()) {
            char c = text_[pos_];
            if (c == '\n' || c == ';') {
                pos_++;
                if (!words.empty()) return words;
            } else if (continuation()) {
                pos_ += 2;
            } else if (std::isspace(uint8_t(c))) {
                pos_++;
            } else if (c == '#') {
                while (pos_ < text_.size() && text_[pos_] != '\n') pos_++;
            } else {
                std::string word;
                // An unquoted variable that expands to nothing leaves no word.
                if (read_word(variables, word)) words.push_back(std::move(word));
            }
        }
        return words;
    }

private:
    bool continuation() const { return text_[pos_] == '\\' && pos_ + 1 < text_.size() && text_[pos_ + 1] == '\n'; }

    bool read_word(const Variables& variables, std::string& word) {
        bool quoted = false;
        while (pos_ < text_.size()) {
            char c = text_[pos_];
            if (std::isspace(uint8_t(c)) || c == ';') break;
            if (continuation()) {
                pos_ += 2;
            } else if (c == '\'') {
                quoted = true;
                size_t end = text_.find('\'', pos_ + 1);
                if (end == std::string_view::npos) end = text_.size();
                word += text_.substr(pos_ + 1, end - pos_ - 1);
                pos_ = end + 1;
            } else if (c == '"') {
                quoted = true;
                pos_++;
                while (pos_ < text_.size() && text_[pos_] != '"') {
                    if (continuation()) {
                        pos_ += 2;
                    } else if (text_[pos_] == '\\' && pos_ + 1 < text_.size() &&
                               std::string_view("\"\\$").find(text_[pos_ + 1]) != std::string_view::npos) {
                        word += text_[pos_ + 1];
                        pos_ += 2;
                    } else if (text_[pos_] == '$') {
                        expand(variables, word);
                    } else {
                        word += text_[pos_++];
                    }
                }
                pos_++;
            } else if (c == '\\') {
                quoted = true;
                if (pos_ + 1 < text_.size()) word += text_[pos_ + 1];
                pos_ += 2;
            } else if (c == '$') {
                expand(variables, word);
            } else {
                word += c;
                pos_++;
            }
        }
        return quoted || !word.empty();
    }

    // At a '$': appends the value of $name or ${name}; a '$' that starts
    // neither stays as it is.
    void expand(const Variables& variables, std::string& word) {
        std::string_view name;
        if (pos_ + 1 < text_.size() && text_[pos_ + 1] == '{') {
            size_t end = text_.find('}', pos_ + 2);
            if (end == std::string_view::npos) end = text_.size();
            name = text_.substr(pos_ + 2, end - pos_ - 2);
            pos_ = end + 1;
        } else {
            size_t end = pos_ + 1;
            while (end < text_.size() && (std::isalnum(uint8_t(text_[end])) || text_[end] == '_')) end++;
            name = text_.substr(pos_ + 1, end - pos_ - 1);
            if (name.empty()) {
                word += '$';
                pos_++;
                return;
            }
            pos_ = end;
        }
        if (auto it = variables.find(name); it != variables.end()) word += it->second;
    }

    std::string_view text_;
    size_t pos_ = 0;
};

// grubenv: "name=value" lines after a comment, padded with '#' to 1 KiB.
Variables parse_grubenv(std::string_view text) {
    Variables variables;
    std::istringstream in{std::string(text)};
    std::string line;
    while (std::getline(in, line)) {
        size_t eq = line.find('=');
        if (line.starts_with('#') || eq == std::string::npos) continue;
        variables[line.substr(0, eq)] = line.substr(eq + 1);
    }
    return variables;
}

// The title and --id of "menuentry TITLE [options] {" or "submenu ...".
GrubEntry::Item menu_item(const std::vector<std::string>& words, unsigned index) {
    GrubEntry::Item item{index, words.size() > 2 ? words[1] : "", ""};
    for (size_t i = 2; i + 1 < words.size(); i++) {
        if (words[i] == "--id") item.id = words[i + 1];
        else if (words[i].starts_with("--id=")) item.id = words[i].substr(5);
    }
    return item;
}

// One part of a default path: an index if it is a number, else a title or id.
bool item_named(const GrubEntry::Item& item, std::string_view name) {
    unsigned index;
    auto [end, error] = std::from_chars(name.data(), name.data() + name.size(), index);
    if (error == std::errc() && end == name.data() + name.size()) return item.index == index;
    return item.title == name || item.id == name;
}

const GrubEntry* find_entry(const std::vector<GrubEntry>& entries, std::string_view name) {
    if (name.empty()) return nullptr;
    std::vector<std::string_view> parts;
    for (size_t start = 0;;) {
        size_t end = name.find('>', start);
        parts.push_back(name.substr(start, end - start));
        if (end == std::string_view::npos) break;
        start = end + 1;
    }
    for (const auto& entry : entries) {
        if (entry.path.size() != parts.size()) continue;
        size_t i = 0;
        while (i < parts.size() && item_named(entry.path[i], parts[i])) i++;
        if (i == parts.size()) return &entry;
    }
    return nullptr;
}

}  // namespace

GrubConfig parse_grub_config(std::string_view text, std::string_view grubenv) {
    Variables variables = parse_grubenv(grubenv);
    variables.erase("next_entry");  // see the header
    // What GRUB 2.00 and later set it to; update-grub's menu entries name
    // their id with it.
    variables["menuentry_id_option"] = "--id";

    GrubConfig config;
    enum class Block { submenu, entry, other };
    std::vector<Block> blocks;
    std::vector<GrubEntry::Item> submenus;
    std::vector<unsigned> items_in_menu = {0};  // the top menu's, then each open submenu's
    int conditionals = 0;                       // open if/for/while at the top level
    Lexer lexer(text);
    for (auto words = lexer.next(variables); !words.empty(); words = lexer.next(variables)) {
        if (words.front() == "then" || words.front() == "else" || words.front() == "do") {
            words.erase(words.begin());
            if (words.empty()) continue;
        }
        const std::string& command = words.front();
        bool in_entry = !blocks.empty() && blocks.back() == Block::entry;
        if (command == "}") {
            if (blocks.empty()) continue;
            if (blocks.back() == Block::submenu) {
                submenus.pop_back();
                items_in_menu.pop_back();
            }
            blocks.pop_back();
        } else if (words.back() == "{") {
            bool in_menu = blocks.empty() || blocks.back() == Block::submenu;
            if (in_menu && (command == "menuentry" || command == "submenu")) {
                GrubEntry::Item item = menu_item(words, items_in_menu.back()++);
                if (command == "submenu") {
                    blocks.push_back(Block::submenu);
                    submenus.push_back(item);
                    items_in_menu.push_back(0);
                } else {
                    blocks.push_back(Block::entry);
                    config.entries.push_back({submenus, "", "", {}});
                    config.entries.back().path.push_back(item);
                }
            } else {
                blocks.push_back(Block::other);  // a function, or an entry where none belongs
            }
        } else if (in_entry && command == "linux" && words.size() > 1) {
            GrubEntry& entry = config.entries.back();
            entry.linux = words[1];
            entry.args.clear();
            for (size_t i = 2; i < words.size(); i++) entry.args += (i > 2 ? " " : "") + words[i];
        } else if (in_entry && command == "initrd") {
            config.entries.back().initrd.assign(words.begin() + 1, words.end());
        } else if (blocks.empty()) {
            if (command == "if" || command == "for" || command == "while" || command == "until") conditionals++;
            else if ((command == "fi" || command == "done") && conditionals > 0) conditionals--;
            size_t eq = words.size() > 1 ? words[1].find('=') : std::string::npos;
            if (command != "set" || eq == std::string::npos) continue;
            std::string name = words[1].substr(0, eq), value = words[1].substr(eq + 1);
            if (name == "default" && !value.empty()) config.default_entry = value;
            if (conditionals == 0) variables[name] = value;
        }
    }
    return config;
}

std::optional<GrubEntry> choose_grub_entry(const GrubConfig& config, const std::optional<std::string>& release) {
    const GrubEntry* chosen = find_entry(config.entries, config.default_entry);
    if (!chosen) chosen = find_entry(config.entries, "0");
    if (release && !(chosen && kernel_is_release(chosen->linux, *release))) {
        chosen = nullptr;
        for (const auto& entry : config.entries) {
            if (kernel_is_release(entry.linux, *release)) {
                chosen = &entry;
                break;
            }
        }
    }
    if (!chosen || chosen->linux.empty()) return std::nullopt;
    return *chosen;
}

}  // namespace ntc::vmm
