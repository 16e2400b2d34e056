// A restricted unpickler for the data.pkl that torch.save writes for a state dict.
//
// It interprets pickle opcodes as data only: GLOBAL resolves against a fixed allow-list and
// REDUCE can only build an OrderedDict or a tensor description, so nothing in the file can call
// arbitrary code. Anything else (an unknown opcode, a foreign global, a malformed stack) is an
// error naming the file and the byte offset.

import Foundation

/// The callables and classes a torch state dict pickle may name.
enum AllowedGlobal: Equatable {
  case orderedDict
  case rebuildTensorV2
  /// `torch._utils._rebuild_parameter`: a state dict saved with `keep_vars=True`; it only wraps a tensor.
  case rebuildParameter
  case storageType(ScalarType)

  init?(module: String, name: String) {
    switch (module, name) {
    case ("collections", "OrderedDict"): self = .orderedDict
    case ("torch._utils", "_rebuild_tensor_v2"): self = .rebuildTensorV2
    case ("torch._utils", "_rebuild_parameter"): self = .rebuildParameter
    case ("torch", _):
      guard let type = ScalarType(storageClassName: name) else { return nil }
      self = .storageType(type)
    default: return nil
    }
  }
}

/// What a persistent id `('storage', StorageType, key, location, numel)` refers to.
struct StorageReference: Equatable {
  var scalarType: ScalarType
  var key: String
  var elementCount: Int
}

/// The arguments of `_rebuild_tensor_v2`, checked for type but not yet against the storage.
struct TensorReference: Equatable {
  var storage: StorageReference
  var storageOffset: Int
  var sizes: [Int]
  var strides: [Int]
}

// Tuples, lists and dicts are classes that the unpickler also keeps in a registry, and empties
// one by one when it is done: releasing a deeply nested value (a hostile pickle can nest a million
// tuples in a megabyte) would otherwise recurse once per level and overflow the stack.

/// A dict or OrderedDict under construction; a class because SETITEMS mutates the object that
/// the memo may also hold.
final class PickleDict {
  private(set) var entries: [(key: PickleValue, value: PickleValue)] = []
  private var indexOfStringKey: [String: Int] = [:]

  /// Python semantics: a repeated key replaces the value in place.
  func set(_ value: PickleValue, for key: PickleValue) {
    if case .string(let name) = key {
      if let index = indexOfStringKey[name] {
        entries[index].value = value
        return
      }
      indexOfStringKey[name] = entries.count
    }
    entries.append((key, value))
  }

  fileprivate func removeAll() {
    entries = []
    indexOfStringKey = [:]
  }
}

final class PickleList {
  var items: [PickleValue] = []
}

final class PickleTuple {
  fileprivate(set) var items: [PickleValue]

  init(_ items: [PickleValue]) { self.items = items }
}

enum PickleValue {
  case none
  case bool(Bool)
  case int(Int)
  case float(Double)
  case string(String)
  case tuple(PickleTuple)
  case list(PickleList)
  case dict(PickleDict)
  case global(AllowedGlobal)
  case storage(StorageReference)
  case tensor(TensorReference)

  var kindName: String {
    switch self {
    case .none: return "None"
    case .bool: return "bool"
    case .int: return "int"
    case .float: return "float"
    case .string: return "str"
    case .tuple: return "tuple"
    case .list: return "list"
    case .dict: return "dict"
    case .global: return "global"
    case .storage: return "storage"
    case .tensor: return "tensor"
    }
  }
}

/// Opcodes of pickle protocols 2 (what torch.save writes) plus the cheap protocol 4 framing ones.
private enum Opcode: UInt8 {
  case proto = 0x80
  case frame = 0x95
  case stop = 0x2E  // .
  case global = 0x63  // c
  case stackGlobal = 0x93
  case binput = 0x71  // q
  case longBinput = 0x72  // r
  case memoize = 0x94
  case binget = 0x68  // h
  case longBinget = 0x6A  // j
  case binint = 0x4A  // J
  case binint1 = 0x4B  // K
  case binint2 = 0x4D  // M
  case long1 = 0x8A
  case binfloat = 0x47  // G
  case binunicode = 0x58  // X
  case shortBinunicode = 0x8C
  case emptyDict = 0x7D  // }
  case emptyTuple = 0x29  // )
  case emptyList = 0x5D  // ]
  case append = 0x61  // a
  case appends = 0x65  // e
  case mark = 0x28  // (
  case tuple = 0x74  // t
  case tuple1 = 0x85
  case tuple2 = 0x86
  case tuple3 = 0x87
  case setitem = 0x73  // s
  case setitems = 0x75  // u
  case reduce = 0x52  // R
  case build = 0x62  // b
  case binpersid = 0x51  // Q
  case newtrue = 0x88
  case newfalse = 0x89
  case none = 0x4E  // N

  /// The name pickletools prints.
  var name: String {
    switch self {
    case .proto: return "PROTO"
    case .frame: return "FRAME"
    case .stop: return "STOP"
    case .global: return "GLOBAL"
    case .stackGlobal: return "STACK_GLOBAL"
    case .binput: return "BINPUT"
    case .longBinput: return "LONG_BINPUT"
    case .memoize: return "MEMOIZE"
    case .binget: return "BINGET"
    case .longBinget: return "LONG_BINGET"
    case .binint: return "BININT"
    case .binint1: return "BININT1"
    case .binint2: return "BININT2"
    case .long1: return "LONG1"
    case .binfloat: return "BINFLOAT"
    case .binunicode: return "BINUNICODE"
    case .shortBinunicode: return "SHORT_BINUNICODE"
    case .emptyDict: return "EMPTY_DICT"
    case .emptyTuple: return "EMPTY_TUPLE"
    case .emptyList: return "EMPTY_LIST"
    case .append: return "APPEND"
    case .appends: return "APPENDS"
    case .mark: return "MARK"
    case .tuple: return "TUPLE"
    case .tuple1: return "TUPLE1"
    case .tuple2: return "TUPLE2"
    case .tuple3: return "TUPLE3"
    case .setitem: return "SETITEM"
    case .setitems: return "SETITEMS"
    case .reduce: return "REDUCE"
    case .build: return "BUILD"
    case .binpersid: return "BINPERSID"
    case .newtrue: return "NEWTRUE"
    case .newfalse: return "NEWFALSE"
    case .none: return "NONE"
    }
  }
}

struct RestrictedUnpickler {
  private let bytes: [UInt8]
  private let file: String
  private var position = 0
  /// Offset of the opcode being executed, for messages.
  private var opcodeOffset = 0
  private var opcode = Opcode.stop
  private var opcodeName: String { opcode.name }
  private var stack: [PickleValue] = []
  private var marks: [Int] = []
  private var memo: [Int: PickleValue] = [:]
  private var tuples: [PickleTuple] = []
  private var lists: [PickleList] = []
  private var dicts: [PickleDict] = []

  init(bytes: [UInt8], file: String) {
    self.bytes = bytes
    self.file = file
  }

  /// Runs the pickle to its STOP and hands the object it built to `body`, which must not keep
  /// any tuple, list or dict of it: they are emptied when `body` returns.
  static func unpickle<Result>(
    _ bytes: [UInt8], file: String, _ body: (PickleValue) throws -> Result
  ) throws -> Result {
    var unpickler = RestrictedUnpickler(bytes: bytes, file: file)
    defer { unpickler.tearDown() }
    return try body(try unpickler.run())
  }

  /// Empties every container while the registry still holds them all, so that no release
  /// recurses into a nested one.
  private mutating func tearDown() {
    stack = []
    memo = [:]
    for tuple in tuples { tuple.items = [] }
    for list in lists { list.items = [] }
    for dict in dicts { dict.removeAll() }
    tuples = []
    lists = []
    dicts = []
  }

  private mutating func makeTuple(_ items: [PickleValue]) -> PickleValue {
    let tuple = PickleTuple(items)
    tuples.append(tuple)
    return .tuple(tuple)
  }

  private mutating func makeList() -> PickleValue {
    let list = PickleList()
    lists.append(list)
    return .list(list)
  }

  private mutating func makeDict() -> PickleValue {
    let dict = PickleDict()
    dicts.append(dict)
    return .dict(dict)
  }

  private mutating func run() throws -> PickleValue {
    while true {
      opcodeOffset = position
      guard position < bytes.count else {
        throw TorchCheckpointError.truncatedPickle(
          file: file, offset: position, opcode: "(none, STOP missing)")
      }
      let byte = bytes[position]
      position += 1
      guard let opcode = Opcode(rawValue: byte) else {
        throw TorchCheckpointError.unknownOpcode(file: file, offset: opcodeOffset, opcode: byte)
      }
      self.opcode = opcode
      if opcode == .stop {
        guard marks.isEmpty, stack.count == 1, let result = stack.last else {
          throw malformed("STOP with \(stack.count) values on the stack and \(marks.count) open marks")
        }
        return result
      }
      try execute(opcode)
    }
  }

  // MARK: - Opcodes

  private mutating func execute(_ opcode: Opcode) throws {
    switch opcode {
    case .stop:
      break  // handled by run()
    case .proto:
      let version = try readByte()
      guard version >= 2 && version <= 5 else {
        throw malformed("pickle protocol \(version) is not supported")
      }
    case .frame:
      _ = try readBytes(8)  // a length hint only; the frame's opcodes follow inline
    case .global:
      let module = try readLine()
      let name = try readLine()
      try pushGlobal(module: module, name: name)
    case .stackGlobal:
      let name = try pop()
      let module = try pop()
      guard case .string(let moduleName) = module, case .string(let globalName) = name else {
        throw malformed("STACK_GLOBAL needs two strings, got \(module.kindName) and \(name.kindName)")
      }
      try pushGlobal(module: moduleName, name: globalName)
    case .binput:
      memo[Int(try readByte())] = try top()
    case .longBinput:
      memo[Int(try readUInt32())] = try top()
    case .memoize:
      memo[memo.count] = try top()
    case .binget:
      try pushMemo(Int(try readByte()))
    case .longBinget:
      try pushMemo(Int(try readUInt32()))
    case .binint:
      stack.append(.int(Int(Int32(bitPattern: try readUInt32()))))
    case .binint1:
      stack.append(.int(Int(try readByte())))
    case .binint2:
      let low = Int(try readByte())
      let high = Int(try readByte())
      stack.append(.int(low | high << 8))
    case .long1:
      stack.append(.int(try readLong(byteCount: Int(try readByte()))))
    case .binfloat:
      var bits: UInt64 = 0
      for byte in try readBytes(8) { bits = bits << 8 | UInt64(byte) }  // big-endian
      stack.append(.float(Double(bitPattern: bits)))
    case .binunicode:
      stack.append(.string(try readString(byteCount: Int(try readUInt32()))))
    case .shortBinunicode:
      stack.append(.string(try readString(byteCount: Int(try readByte()))))
    case .emptyDict:
      stack.append(makeDict())
    case .emptyTuple:
      stack.append(makeTuple([]))
    case .emptyList:
      stack.append(makeList())
    case .append:
      let item = try pop()
      try list(at: stack.count - 1).items.append(item)
    case .appends:
      let items = try popToMark()
      try list(at: stack.count - 1).items.append(contentsOf: items)
    case .mark:
      marks.append(stack.count)
    case .tuple:
      stack.append(makeTuple(try popToMark()))
    case .tuple1, .tuple2, .tuple3:
      let count = Int(opcode.rawValue - Opcode.tuple1.rawValue) + 1
      guard stack.count >= count else { throw malformed("stack underflow") }
      let items = Array(stack.suffix(count))
      stack.removeLast(count)
      stack.append(makeTuple(items))
    case .setitem:
      let value = try pop()
      let key = try pop()
      try dict(at: stack.count - 1).set(value, for: key)
    case .setitems:
      let items = try popToMark()
      guard items.count % 2 == 0 else { throw malformed("SETITEMS with an odd number of values") }
      let target = try dict(at: stack.count - 1)
      for index in stride(from: 0, to: items.count, by: 2) { target.set(items[index + 1], for: items[index]) }
    case .reduce:
      let arguments = try pop()
      let callable = try pop()
      stack.append(try reduce(callable, arguments))
    case .build:
      // torch.save only BUILDs the state dict's `_metadata` (per-module version numbers): ignored.
      let state = try pop()
      guard case .dict = try top() else {
        throw malformed("BUILD on a \(try top().kindName); only a dict's state (_metadata) is accepted")
      }
      guard case .dict = state else {
        throw malformed("BUILD with a \(state.kindName) state; expected a dict")
      }
    case .binpersid:
      stack.append(.storage(try storageReference(from: try pop())))
    case .newtrue:
      stack.append(.bool(true))
    case .newfalse:
      stack.append(.bool(false))
    case .none:
      stack.append(.none)
    }
  }

  private mutating func pushGlobal(module: String, name: String) throws {
    guard let global = AllowedGlobal(module: module, name: name) else {
      // STACK_GLOBAL names come from strings of any length: keep messages short.
      let global = "\(module).\(name)"
      throw TorchCheckpointError.foreignGlobal(
        file: file, offset: opcodeOffset, global: global.count > 200 ? global.prefix(200) + "..." : global)
    }
    stack.append(.global(global))
  }

  private mutating func pushMemo(_ index: Int) throws {
    guard let value = memo[index] else { throw malformed("memo entry \(index) was never stored") }
    stack.append(value)
  }

  // MARK: - Objects

  private mutating func reduce(_ callable: PickleValue, _ arguments: PickleValue) throws -> PickleValue {
    guard case .global(let global) = callable else {
      throw malformed("REDUCE calls a \(callable.kindName), not an allowed global")
    }
    guard case .tuple(let tuple) = arguments else {
      throw malformed("REDUCE arguments are a \(arguments.kindName), not a tuple")
    }
    let args = tuple.items
    switch global {
    case .orderedDict:
      guard args.isEmpty else {
        throw malformed("OrderedDict built with \(args.count) arguments; expected none")
      }
      return makeDict()
    case .rebuildTensorV2:
      return .tensor(try tensorReference(from: args))
    case .rebuildParameter:
      // (data, requires_grad, backward_hooks)
      guard args.count == 3, case .tensor(let tensor) = args[0] else {
        throw malformed("_rebuild_parameter expects (tensor, requires_grad, hooks)")
      }
      return .tensor(tensor)
    case .storageType(let type):
      throw malformed("storage type \(type) called directly; storages only come from persistent ids")
    }
  }

  /// `_rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])`.
  private func tensorReference(from args: [PickleValue]) throws -> TensorReference {
    guard args.count == 6 || args.count == 7 else {
      throw malformed("_rebuild_tensor_v2 expects 6 or 7 arguments, got \(args.count)")
    }
    guard case .storage(let storage) = args[0] else {
      throw malformed("_rebuild_tensor_v2 argument 0 is a \(args[0].kindName), expected a storage")
    }
    guard case .int(let offset) = args[1] else {
      throw malformed("_rebuild_tensor_v2 storage offset is a \(args[1].kindName), expected an int")
    }
    let sizes = try integers(args[2], what: "size")
    let strides = try integers(args[3], what: "stride")
    guard case .bool = args[4] else {
      throw malformed("_rebuild_tensor_v2 requires_grad is a \(args[4].kindName), expected a bool")
    }
    return TensorReference(storage: storage, storageOffset: offset, sizes: sizes, strides: strides)
  }

  private func integers(_ value: PickleValue, what: String) throws -> [Int] {
    guard case .tuple(let tuple) = value else {
      throw malformed("tensor \(what) is a \(value.kindName), expected a tuple of ints")
    }
    return try tuple.items.map { item in
      guard case .int(let number) = item else { throw malformed("tensor \(what) holds a \(item.kindName)") }
      return number
    }
  }

  /// `('storage', StorageType, key, location, numel)`; any location string ("cpu", "cuda:0") is fine.
  private func storageReference(from pid: PickleValue) throws -> StorageReference {
    guard case .tuple(let tuple) = pid, case let items = tuple.items, items.count == 5,
      case .string("storage") = items[0]
    else {
      throw malformed("persistent id is not ('storage', type, key, location, numel)")
    }
    guard case .global(.storageType(let type)) = items[1] else {
      throw malformed("persistent id names a \(items[1].kindName), expected a torch storage type")
    }
    guard case .string(let key) = items[2], case .string = items[3], case .int(let count) = items[4] else {
      throw malformed("persistent id fields have the wrong types (key and location must be str, numel int)")
    }
    guard count >= 0 else { throw malformed("storage \(key) has a negative element count \(count)") }
    return StorageReference(scalarType: type, key: key, elementCount: count)
  }

  // MARK: - Stack

  /// The top of the stack, which a MARK hides (as in CPython, where MARK starts a new stack).
  private func top() throws -> PickleValue {
    guard stack.count > (marks.last ?? 0), let value = stack.last else { throw malformed("stack underflow") }
    return value
  }

  private mutating func pop() throws -> PickleValue {
    guard stack.count > (marks.last ?? 0), let value = stack.popLast() else {
      throw malformed("stack underflow")
    }
    return value
  }

  private mutating func popToMark() throws -> [PickleValue] {
    guard let mark = marks.popLast() else { throw malformed("\(opcodeName) without a MARK") }
    let items = Array(stack[mark...])
    stack.removeSubrange(mark...)
    return items
  }

  private func dict(at index: Int) throws -> PickleDict {
    guard index >= (marks.last ?? 0), index >= 0, case .dict(let dict) = stack[index] else {
      throw malformed("\(opcodeName) target is not a dict")
    }
    return dict
  }

  private func list(at index: Int) throws -> PickleList {
    guard index >= (marks.last ?? 0), index >= 0, case .list(let list) = stack[index] else {
      throw malformed("\(opcodeName) target is not a list")
    }
    return list
  }

  // MARK: - Reading

  private func malformed(_ reason: String) -> TorchCheckpointError {
    .malformedPickle(file: file, offset: opcodeOffset, reason: "\(opcodeName): \(reason)")
  }

  private func truncated() -> TorchCheckpointError {
    .truncatedPickle(file: file, offset: opcodeOffset, opcode: opcodeName)
  }

  private mutating func readByte() throws -> UInt8 {
    guard position < bytes.count else { throw truncated() }
    defer { position += 1 }
    return bytes[position]
  }

  private mutating func readBytes(_ count: Int) throws -> ArraySlice<UInt8> {
    guard count >= 0, count <= bytes.count - position else { throw truncated() }
    defer { position += count }
    return bytes[position..<position + count]
  }

  private mutating func readUInt32() throws -> UInt32 {
    var value: UInt32 = 0
    for (shift, byte) in try readBytes(4).enumerated() { value |= UInt32(byte) << (8 * shift) }
    return value
  }

  /// LONG1: little-endian two's complement; anything wider than 64 bits is refused.
  private mutating func readLong(byteCount: Int) throws -> Int {
    let digits = try readBytes(byteCount)
    guard byteCount <= 8 else { throw malformed("integer of \(byteCount) bytes is too large") }
    guard let last = digits.last else { return 0 }
    var value: UInt64 = last & 0x80 != 0 ? UInt64.max : 0
    for byte in digits.reversed() { value = value << 8 | UInt64(byte) }
    return Int(Int64(bitPattern: value))
  }

  private mutating func readString(byteCount: Int) throws -> String {
    let utf8 = try readBytes(byteCount)
    guard let string = String(bytes: utf8, encoding: .utf8) else {
      throw malformed("string is not valid UTF-8")
    }
    return string
  }

  /// A GLOBAL operand: text up to a newline, at most 200 bytes (the names we accept are short;
  /// this keeps a hostile one out of error messages).
  private mutating func readLine() throws -> String {
    let window = bytes[position..<min(bytes.count, position + 201)]
    guard let newline = window.firstIndex(of: 0x0A) else {
      if window.count == 201 { throw malformed("global name longer than 200 bytes") }
      throw truncated()
    }
    let line = bytes[position..<newline]
    position = newline + 1
    guard let text = String(bytes: line, encoding: .utf8) else { throw malformed("global name is not UTF-8") }
    return text
  }
}
