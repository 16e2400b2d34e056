import Foundation

/// What is wrong with an input of this module: a COCO RLE string, a .npy file, a prompt or a
/// prompts file. Messages name the input (file, option, prompt) and the cause.
public enum InputError: Error, LocalizedError, Equatable {
  case rleInvalidCharacter(offset: Int, code: Int)
  case rleTruncated(offset: Int)
  case rleValueTooLong(offset: Int)
  case rleNegativeRun(Int)
  case rleRunTooLong(Int)
  case rleSizeMismatch(runTotal: Int, width: Int, height: Int)
  case rleInvalidSize(width: Int, height: Int)
  /// A .npy file that cannot be read, parsed or written.
  case npy(file: String, reason: String)
  /// A prompt given on the command line or in a prompts file; `source` names it.
  case prompt(source: String, reason: String)
  /// A prompts JSON file that cannot be read or does not have the expected structure.
  case promptsFile(file: String, reason: String)
  /// Options that do not go together.
  case usage(String)

  public var errorDescription: String? {
    switch self {
    case .rleInvalidCharacter(let offset, let code):
      return "RLE counts: character \(code) at offset \(offset) is outside '0'...'o' (48...111)"
    case .rleTruncated(let offset):
      return "RLE counts: the value starting at offset \(offset) is cut off at the end of the string"
    case .rleValueTooLong(let offset):
      return "RLE counts: the value starting at offset \(offset) has more than 12 characters"
    case .rleNegativeRun(let value): return "RLE counts: a run has negative length \(value)"
    case .rleRunTooLong(let value): return "RLE counts: a run of \(value) pixels exceeds 2^32 - 1"
    case .rleSizeMismatch(let total, let width, let height):
      return
        "RLE counts: the runs cover \(total) pixels but the mask is \(width)x\(height) = \(width * height)"
    case .rleInvalidSize(let width, let height): return "RLE: invalid mask size \(width)x\(height)"
    case .npy(let file, let reason): return "\(file): \(reason)"
    case .prompt(let source, let reason): return "\(source): \(reason)"
    case .promptsFile(let file, let reason): return "\(file): \(reason)"
    case .usage(let message): return message
    }
  }
}
