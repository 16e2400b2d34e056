import SAMTensor

/// Strict consumption of a checkpoint by a model: every key is taken once with its expected
/// shape, or ignored on purpose; leftovers are an error.
public final class CheckpointWeights {
  private let checkpoint: Checkpoint
  /// The checkpoint's name (its file) in messages.
  public let source: String
  private var taken: Set<String> = []
  private var ignoredPrefixes: [String] = []
  private var ignoredSuffixes: [String] = []

  /// `source` names the checkpoint (its file name) in messages.
  public init(_ checkpoint: Checkpoint, source: String) {
    self.checkpoint = checkpoint
    self.source = source
  }

  /// Whether `key` is present (for weights that only some checkpoints carry).
  public func contains(_ key: String) -> Bool { checkpoint.tensors[key] != nil }

  /// The shape of `key` without taking it (to read an architecture from the file), nil if absent.
  public func shape(of key: String) -> [Int]? { checkpoint.tensors[key]?.shape }

  /// The tensor at `key`; error if missing ("missing key K in FILE") or the shape differs
  /// ("K in FILE has shape [a, b], expected [c, d]").
  public func take(_ key: String, shape: [Int]) throws -> Tensor {
    guard let tensor = checkpoint.tensors[key] else {
      throw TorchCheckpointError.missingKey(file: source, key: key)
    }
    guard tensor.shape == shape else {
      throw TorchCheckpointError.shapeMismatch(file: source, key: key, actual: tensor.shape, expected: shape)
    }
    guard taken.insert(key).inserted else { throw TorchCheckpointError.keyTakenTwice(file: source, key: key) }
    return tensor
  }

  /// Marks every key starting with `prefix` as deliberately unused (e.g. "image_encoder.head.").
  public func ignore(prefix: String) { ignoredPrefixes.append(prefix) }

  /// Marks every key ending with `suffix` as deliberately unused (e.g. ".num_batches_tracked").
  public func ignore(suffix: String) { ignoredSuffixes.append(suffix) }

  /// Keys neither taken nor ignored, sorted.
  public var unusedKeys: [String] {
    checkpoint.tensors.keys.filter { key in
      !taken.contains(key) && !ignoredPrefixes.contains(where: { key.hasPrefix($0) })
        && !ignoredSuffixes.contains(where: { key.hasSuffix($0) })
    }.sorted()
  }

  /// Error listing unused keys (the first few and the count) when any key was neither taken nor ignored.
  public func finish() throws {
    let unused = unusedKeys
    guard unused.isEmpty else {
      throw TorchCheckpointError.unusedKeys(file: source, keys: Array(unused.prefix(5)), count: unused.count)
    }
  }
}
