import ArgumentParser
import Foundation
import SAMBatch
import SAMBatchFakes

/// stderr lines (progress and notes go to stderr, results to stdout).
func note(_ text: String) {
  FileHandle.standardError.write(Data((text + "\n").utf8))
}

func isTerminal(_ fd: Int32) -> Bool { isatty(fd) == 1 }

/// Every command's errors read `sambatch <command>: error: <message>` on stderr; returns the exit
/// code to throw.
func fail(_ command: String, _ message: String, status: ExitCode = .failure) -> ExitCode {
  note("sambatch \(command): error: \(message)")
  return status
}

/// Runs `body`, turning any error but an exit code into the one error line and exit status 1 (64
/// for a usage error or a job parameter out of range).
func reportingErrors(_ command: String, _ body: () throws -> Void) throws {
  do { try body() } catch let exit as ExitCode { throw exit } catch let error as ValidationError {
    throw fail(command, error.message, status: .usage)
  } catch let error as SAMBatchError {
    if case .jobParameter = error { throw fail(command, error.localizedDescription, status: .usage) }
    throw fail(command, error.localizedDescription)
  } catch {
    throw fail(command, error.localizedDescription)
  }
}

/// The model a job runs with: the test-only fake segmenter when `SAMBATCH_FAKE_SEGMENTER=1`
/// (with `SAMBATCH_FAKE_DELAY_MS`; the run says so), else the checkpoint of `SAMBATCH_MODEL` or
/// the job's `model:`.
func modelSource(for job: JobFile, log: (String) -> Void) throws -> any SegmenterSource {
  let environment = ProcessInfo.processInfo.environment
  if let fake = FakeSegmenterSource(environment: environment) {
    log("SAMBATCH_FAKE_SEGMENTER=1: using the fake segmenter (for tests only), not a model")
    return fake
  }
  let path = try ModelPath.resolve(option: nil, job: job, environment: environment)
  if let line = path.note { log(line) }
  return CheckpointSource(url: path.url)
}

extension ExitCode {
  /// EX_USAGE from sysexits.h, as ArgumentParser uses for its own parsing errors.
  static let usage = ExitCode(64)
}
