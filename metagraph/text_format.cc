#include "metagraph/text_format.h"

#include "absl/strings/str_cat.h"
#include "google/protobuf/io/tokenizer.h"

namespace mgreg {
namespace {

// Keeps the first error the parser reports.
class FirstErrorCollector : public google::protobuf::io::ErrorCollector {
 public:
  void AddError(int line, google::protobuf::io::ColumnNumber column,
                const std::string& message) override {
    if (error_.has_value()) return;
    error_ = TextFormatError{line + 1, column + 1, message};
  }
  void AddWarning(int, google::protobuf::io::ColumnNumber, const std::string&) override {}
  const std::optional<TextFormatError>& error() const { return error_; }

 private:
  std::optional<TextFormatError> error_;
};

}  // namespace

std::string TextFormatError::ToString() const {
  return absl::StrCat("line ", line, ", column ", column, ": ", message);
}

std::optional<TextFormatError> ParseTextFormat(
    absl::string_view text, google::protobuf::Message* message, bool merge,
    google::protobuf::TextFormat::ParseInfoTree* locations) {
  FirstErrorCollector errors;
  google::protobuf::TextFormat::Parser parser;
  parser.RecordErrorsTo(&errors);
  if (locations != nullptr) parser.WriteLocationsTo(locations);
  const std::string input(text);
  const bool ok = merge ? parser.MergeFromString(input, message)
                        : parser.ParseFromString(input, message);
  if (ok) return std::nullopt;
  if (errors.error().has_value()) return errors.error();
  return TextFormatError{0, 0, "not a valid text-format message"};
}

}  // namespace mgreg
