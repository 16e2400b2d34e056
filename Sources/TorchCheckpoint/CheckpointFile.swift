import Foundation

/// A checkpoint file opened for reading at any offset, from several threads at once (`pread`
/// shares no file position). Every read is checked against the size the file had when opened.
final class CheckpointFile: @unchecked Sendable {
  let path: String
  let size: UInt64
  private let descriptor: Int32

  init(path: String) throws {
    self.path = path
    descriptor = open(path, O_RDONLY | O_CLOEXEC)
    guard descriptor >= 0 else {
      throw TorchCheckpointError.unreadable(file: path, reason: String(cString: strerror(errno)))
    }
    var status = stat()
    guard fstat(descriptor, &status) == 0 else {
      let reason = String(cString: strerror(errno))
      close(descriptor)
      throw TorchCheckpointError.unreadable(file: path, reason: reason)
    }
    guard status.st_mode & S_IFMT == S_IFREG else {
      close(descriptor)
      throw TorchCheckpointError.unreadable(file: path, reason: "not a regular file")
    }
    size = UInt64(status.st_size)
  }

  deinit { close(descriptor) }

  /// Fills `buffer` with the bytes at `offset`; the caller has checked that they lie inside the file.
  func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws {
    var done = 0
    while done < buffer.count {
      let result = pread(
        descriptor, buffer.baseAddress! + done, buffer.count - done, off_t(offset) + off_t(done))
      if result < 0 && errno == EINTR { continue }
      guard result > 0 else {
        let reason =
          result < 0 ? String(cString: strerror(errno)) : "the file ended early (was it changed while read?)"
        throw TorchCheckpointError.unreadable(
          file: path, reason: "reading \(buffer.count) bytes at offset \(offset): \(reason)")
      }
      done += result
    }
  }

  /// `count` bytes at `offset`, or nil when they are not all inside the file.
  func bytes(at offset: UInt64, count: Int) throws -> [UInt8]? {
    guard count >= 0, offset <= size, UInt64(count) <= size - offset else { return nil }
    var bytes = [UInt8](repeating: 0, count: count)
    if count > 0 { try bytes.withUnsafeMutableBytes { try read(into: $0, at: offset) } }
    return bytes
  }

  /// The whole file mapped read-only (private: our view never changes the file). Storages are
  /// checked and used where they lie in it, which copies nothing into fresh memory.
  func map() throws -> CheckpointMapping {
    guard size > 0, size <= UInt64(Int.max) else {
      throw TorchCheckpointError.unreadable(file: path, reason: "cannot map a file of \(size) bytes")
    }
    let base = mmap(nil, Int(size), PROT_READ, MAP_PRIVATE, descriptor, 0)
    guard let base, base != UnsafeMutableRawPointer(bitPattern: -1) else {
      throw TorchCheckpointError.unreadable(
        file: path, reason: "mapping it into memory failed: \(String(cString: strerror(errno)))")
    }
    return CheckpointMapping(bytes: UnsafeRawBufferPointer(start: base, count: Int(size)))
  }
}

/// A checkpoint file mapped into memory, unmapped when the last tensor borrowing from it is gone.
/// The mapping shows the file as it is: a program that rewrites or truncates the file in place
/// while we run changes or removes the weights under us (replacing it, as downloads and `mv` do,
/// leaves our copy intact).
final class CheckpointMapping: @unchecked Sendable {
  let bytes: UnsafeRawBufferPointer

  init(bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

  deinit { munmap(UnsafeMutableRawPointer(mutating: bytes.baseAddress), bytes.count) }

  /// `count` bytes at `offset`; the caller has checked that they lie inside the file.
  func slice(at offset: UInt64, count: Int) -> UnsafeRawBufferPointer {
    UnsafeRawBufferPointer(rebasing: bytes[Int(offset)..<Int(offset) + count])
  }
}
