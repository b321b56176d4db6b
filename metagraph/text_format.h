// Protobuf text-format parsing with the position of the first error, for every text
// input: `.meta`/`.pb` files in text form, the `checkpoint` state file, config files.
#ifndef MGREG_METAGRAPH_TEXT_FORMAT_H_
#define MGREG_METAGRAPH_TEXT_FORMAT_H_

#include <optional>
#include <string>

#include "absl/strings/string_view.h"
#include "google/protobuf/message.h"
#include "google/protobuf/text_format.h"

namespace mgreg {

// The first error of a text-format parse; line and column are 1-based.
struct TextFormatError {
  int line = 0;
  int column = 0;
  std::string message;
  // "line L, column C: message".
  std::string ToString() const;
};

// Parses `text` into `*message` (replacing its content, or merging into it when
// `merge`), recording field positions in `locations` if given. Returns the first error,
// or nullopt on success.
std::optional<TextFormatError> ParseTextFormat(
    absl::string_view text, google::protobuf::Message* message, bool merge = false,
    google::protobuf::TextFormat::ParseInfoTree* locations = nullptr);

}  // namespace mgreg

#endif  // MGREG_METAGRAPH_TEXT_FORMAT_H_
