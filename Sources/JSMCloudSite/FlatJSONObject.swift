import NIOCore

/// A request body that is one flat JSON object of strings, nulls and arrays of strings, read
/// without `JSONDecoder`.
///
/// Creation bodies are tiny (`{"email":…,"displayName":…}`) and arrive thousands of times a
/// second; `JSONDecoder` spends more on its containers than on the bytes. This reader takes only
/// the plain case: anything else (escapes, numbers, booleans, nested objects, duplicate keys,
/// invalid UTF-8, malformed text) makes it give up, and the caller decodes with `JSONDecoder`,
/// which then gives the same answers and error messages as it always has.
struct FlatJSONObject {
    /// A member's value.
    enum Value: Equatable {
        case string(String)
        case null
        case strings([String])
    }

    /// The members by key.
    private(set) var members: [String: Value] = [:]

    /// The string member `key`: `nil` when it is missing or null. A member of another kind makes
    /// the whole read give up (through `throws`), so the decoder can name the type problem.
    func string(_ key: String) throws(GiveUp) -> String? {
        switch members[key] {
        case .none, .null: return nil
        case .string(let value): return value
        case .strings: throw GiveUp()
        }
    }

    /// The array-of-strings member `key`: `nil` when it is missing or null.
    func strings(_ key: String) throws(GiveUp) -> [String]? {
        switch members[key] {
        case .none, .null: return nil
        case .strings(let values): return values
        case .string: throw GiveUp()
        }
    }

    /// Not the plain case: decode with `JSONDecoder` instead.
    struct GiveUp: Error {}

    /// The object in `buffer`, or `nil` when it is not the plain case.
    static func parse(_ buffer: ByteBuffer) -> FlatJSONObject? {
        buffer.withUnsafeReadableBytes { bytes in
            var reader = Reader(bytes: bytes)
            return try? reader.object()
        }
    }

    /// A cursor over the body's bytes; every loop advances it, so each ends at the last byte.
    private struct Reader {
        let bytes: UnsafeRawBufferPointer
        var position = 0

        mutating func object() throws(GiveUp) -> FlatJSONObject {
            var result = FlatJSONObject()
            skipSpace()
            try expect(UInt8(ascii: "{"))
            skipSpace()
            if peek() == UInt8(ascii: "}") {
                position += 1
            } else {
                while true {
                    let key = try string()
                    skipSpace()
                    try expect(UInt8(ascii: ":"))
                    skipSpace()
                    let value = try value()
                    guard result.members.updateValue(value, forKey: key) == nil else { throw GiveUp() }
                    skipSpace()
                    if peek() == UInt8(ascii: ",") {
                        position += 1
                        skipSpace()
                        continue
                    }
                    try expect(UInt8(ascii: "}"))
                    break
                }
            }
            skipSpace()
            guard position == bytes.count else { throw GiveUp() }
            return result
        }

        private mutating func value() throws(GiveUp) -> Value {
            switch peek() {
            case UInt8(ascii: "\""):
                return .string(try string())
            case UInt8(ascii: "n"):
                for expected in [UInt8(ascii: "n"), UInt8(ascii: "u"), UInt8(ascii: "l"), UInt8(ascii: "l")] {
                    try expect(expected)
                }
                return .null
            case UInt8(ascii: "["):
                position += 1
                skipSpace()
                var values: [String] = []
                if peek() == UInt8(ascii: "]") {
                    position += 1
                    return .strings(values)
                }
                while true {
                    values.append(try string())
                    skipSpace()
                    if peek() == UInt8(ascii: ",") {
                        position += 1
                        skipSpace()
                        continue
                    }
                    try expect(UInt8(ascii: "]"))
                    return .strings(values)
                }
            default:
                throw GiveUp()
            }
        }

        /// A string without escapes or control characters, valid UTF-8.
        private mutating func string() throws(GiveUp) -> String {
            try expect(UInt8(ascii: "\""))
            let start = position
            while position < bytes.count {
                let byte = bytes[position]
                if byte == UInt8(ascii: "\"") {
                    let text = String(
                        validating: UnsafeRawBufferPointer(rebasing: bytes[start..<position]), as: UTF8.self)
                    position += 1
                    guard let text else { throw GiveUp() }
                    return text
                }
                guard byte >= 0x20, byte != UInt8(ascii: "\\") else { throw GiveUp() }
                position += 1
            }
            throw GiveUp()
        }

        private func peek() -> UInt8? {
            position < bytes.count ? bytes[position] : nil
        }

        private mutating func expect(_ byte: UInt8) throws(GiveUp) {
            guard peek() == byte else { throw GiveUp() }
            position += 1
        }

        private mutating func skipSpace() {
            while let byte = peek(),
                byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\n") || byte == UInt8(ascii: "\r")
                    || byte == UInt8(ascii: "\t")
            {
                position += 1
            }
        }
    }
}

/// A body type that can be read from the plain case without `JSONDecoder`.
protocol FlatDecodable: Decodable {
    /// The value, or a `GiveUp` when the object needs `JSONDecoder` (e.g. a member of the wrong kind).
    init(flat object: FlatJSONObject) throws(FlatJSONObject.GiveUp)
}

extension CustomerCreateRequest: FlatDecodable {
    init(flat object: FlatJSONObject) throws(FlatJSONObject.GiveUp) {
        self.init(
            email: try object.string("email"), displayName: try object.string("displayName"),
            fullName: try object.string("fullName"))
    }
}

extension UserCreateRequest: FlatDecodable {
    init(flat object: FlatJSONObject) throws(FlatJSONObject.GiveUp) {
        self.init(
            emailAddress: try object.string("emailAddress"), displayName: try object.string("displayName"),
            products: try object.strings("products"))
    }
}
