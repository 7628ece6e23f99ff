import NIOCore

/// Reads the user answers of the migration's hot path (a created user or customer, a search's
/// users) without `JSONDecoder`.
///
/// Every identity costs one or two such answers, and `JSONDecoder` spent more CPU on its
/// containers than on the few bytes the adapter keeps (`accountId`, `accountType`,
/// `emailAddress`). This reader takes only the plain case: well-formed JSON without backslash
/// escapes, at most 32 levels deep, each wanted member once and a string (or null for the optional
/// ones). Anything else makes it give up, and the adapter decodes with `JSONDecoder`, which then
/// gives the same result or the same error it always has. Members it does not want are checked for
/// well-formedness and skipped, so additions on Atlassian's side change nothing.
enum UserAnswerReader {
    /// The user object in `buffer`, or `nil` when it is not the plain case.
    static func user(in buffer: ByteBuffer) -> UserBody? {
        buffer.withUnsafeReadableBytes { bytes in
            var scanner = JSONScanner(bytes: bytes)
            guard let user = try? scanner.user(depth: 0), scanner.atEnd() else { return nil }
            return user
        }
    }

    /// The array of user objects in `buffer`, or `nil` when it is not the plain case.
    static func users(in buffer: ByteBuffer) -> [UserBody]? {
        buffer.withUnsafeReadableBytes { bytes in
            var scanner = JSONScanner(bytes: bytes)
            guard let users = try? scanner.users(), scanner.atEnd() else { return nil }
            return users
        }
    }
}

/// A cursor over one JSON text (RFC 8259) that validates what it passes over.
///
/// Each loop consumes at least one byte per turn and stops at the end of the text, and nesting is
/// bounded by ``maxDepth``, so a hostile answer costs at most one pass over its bytes.
struct JSONScanner {
    /// Not the plain case: the caller falls back to `JSONDecoder`.
    struct GiveUp: Error {}

    /// The deepest nesting read; deeper answers are left to `JSONDecoder`.
    static let maxDepth = 32

    let bytes: UnsafeRawBufferPointer
    private(set) var position = 0

    init(bytes: UnsafeRawBufferPointer) {
        self.bytes = bytes
    }

    /// Whether only whitespace is left.
    mutating func atEnd() -> Bool {
        skipSpace()
        return position == bytes.count
    }

    /// An array of user objects.
    mutating func users() throws(GiveUp) -> [UserBody] {
        skipSpace()
        try expect(UInt8(ascii: "["))
        skipSpace()
        var users: [UserBody] = []
        if peek() == UInt8(ascii: "]") {
            position += 1
            return users
        }
        while position < bytes.count {
            users.append(try user(depth: 1))
            skipSpace()
            if peek() == UInt8(ascii: ",") {
                position += 1
                continue
            }
            try expect(UInt8(ascii: "]"))
            return users
        }
        throw GiveUp()
    }

    /// A user object at nesting `depth`: its `accountId` (required), `accountType` and
    /// `emailAddress`; other members are skipped.
    mutating func user(depth: Int) throws(GiveUp) -> UserBody {
        skipSpace()
        try expect(UInt8(ascii: "{"))
        var accountId: String?
        var accountType: String?
        var emailAddress: String?
        var seen: (accountId: Bool, accountType: Bool, emailAddress: Bool) = (false, false, false)
        skipSpace()
        if peek() == UInt8(ascii: "}") {
            throw GiveUp()  // no accountId: JSONDecoder names the missing key
        }
        while position < bytes.count {
            skipSpace()
            let key = try string()
            skipSpace()
            try expect(UInt8(ascii: ":"))
            skipSpace()
            if matches(key, "accountId") {
                guard !seen.accountId else { throw GiveUp() }
                seen.accountId = true
                accountId = try stringOrNull()
            } else if matches(key, "accountType") {
                guard !seen.accountType else { throw GiveUp() }
                seen.accountType = true
                accountType = try stringOrNull()
            } else if matches(key, "emailAddress") {
                guard !seen.emailAddress else { throw GiveUp() }
                seen.emailAddress = true
                emailAddress = try stringOrNull()
            } else {
                try skipValue(depth: depth + 1)
            }
            skipSpace()
            if peek() == UInt8(ascii: ",") {
                position += 1
                continue
            }
            try expect(UInt8(ascii: "}"))
            guard let accountId else { throw GiveUp() }
            return UserBody(accountId: accountId, accountType: accountType, emailAddress: emailAddress)
        }
        throw GiveUp()
    }

    /// Any JSON value at nesting `depth`, checked and passed over.
    mutating func skipValue(depth: Int) throws(GiveUp) {
        guard depth <= Self.maxDepth else { throw GiveUp() }
        skipSpace()
        guard let first = peek() else { throw GiveUp() }
        switch first {
        case UInt8(ascii: "\""):
            _ = try string()
        case UInt8(ascii: "{"):
            position += 1
            skipSpace()
            if peek() == UInt8(ascii: "}") {
                position += 1
                return
            }
            while position < bytes.count {
                skipSpace()
                _ = try string()
                skipSpace()
                try expect(UInt8(ascii: ":"))
                try skipValue(depth: depth + 1)
                skipSpace()
                if peek() == UInt8(ascii: ",") {
                    position += 1
                    continue
                }
                try expect(UInt8(ascii: "}"))
                return
            }
            throw GiveUp()
        case UInt8(ascii: "["):
            position += 1
            skipSpace()
            if peek() == UInt8(ascii: "]") {
                position += 1
                return
            }
            while position < bytes.count {
                try skipValue(depth: depth + 1)
                skipSpace()
                if peek() == UInt8(ascii: ",") {
                    position += 1
                    continue
                }
                try expect(UInt8(ascii: "]"))
                return
            }
            throw GiveUp()
        case UInt8(ascii: "t"): try literal("true")
        case UInt8(ascii: "f"): try literal("false")
        case UInt8(ascii: "n"): try literal("null")
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): try number()
        default: throw GiveUp()
        }
    }

    /// A string member's value, or `nil` for `null`.
    private mutating func stringOrNull() throws(GiveUp) -> String? {
        if peek() == UInt8(ascii: "n") {
            try literal("null")
            return nil
        }
        let range = try string()
        return String(decoding: UnsafeRawBufferPointer(rebasing: bytes[range]), as: UTF8.self)
    }

    /// A string without escapes; returns the range of its content, which is valid UTF-8.
    private mutating func string() throws(GiveUp) -> Range<Int> {
        try expect(UInt8(ascii: "\""))
        let start = position
        while position < bytes.count {
            let byte = bytes[position]
            switch byte {
            case UInt8(ascii: "\""):
                position += 1
                return start..<(position - 1)
            case UInt8(ascii: "\\"), 0..<0x20:
                throw GiveUp()
            case 0x80...:
                position += try utf8SequenceLength()
            default:
                position += 1
            }
        }
        throw GiveUp()
    }

    /// The length of the well-formed UTF-8 sequence at `position` (RFC 3629: no overlong forms,
    /// no surrogates, nothing past U+10FFFF).
    private func utf8SequenceLength() throws(GiveUp) -> Int {
        let lead = bytes[position]
        let length: Int
        var secondRange: ClosedRange<UInt8> = 0x80...0xBF
        switch lead {
        case 0xC2...0xDF: length = 2
        case 0xE0:
            length = 3
            secondRange = 0xA0...0xBF
        case 0xE1...0xEC, 0xEE...0xEF: length = 3
        case 0xED:
            length = 3
            secondRange = 0x80...0x9F
        case 0xF0:
            length = 4
            secondRange = 0x90...0xBF
        case 0xF1...0xF3: length = 4
        case 0xF4:
            length = 4
            secondRange = 0x80...0x8F
        default: throw GiveUp()
        }
        guard position + length <= bytes.count, secondRange.contains(bytes[position + 1]) else { throw GiveUp() }
        for offset in 2..<length where !(0x80...0xBF).contains(bytes[position + offset]) {
            throw GiveUp()
        }
        return length
    }

    /// A number per RFC 8259's grammar.
    private mutating func number() throws(GiveUp) {
        if peek() == UInt8(ascii: "-") { position += 1 }
        if peek() == UInt8(ascii: "0") {
            position += 1
        } else {
            try digits()
        }
        if peek() == UInt8(ascii: ".") {
            position += 1
            try digits()
        }
        if peek() == UInt8(ascii: "e") || peek() == UInt8(ascii: "E") {
            position += 1
            if peek() == UInt8(ascii: "+") || peek() == UInt8(ascii: "-") { position += 1 }
            try digits()
        }
    }

    /// One or more decimal digits.
    private mutating func digits() throws(GiveUp) {
        let start = position
        while let byte = peek(), (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) { position += 1 }
        guard position > start else { throw GiveUp() }
    }

    /// Exactly `word`.
    private mutating func literal(_ word: StaticString) throws(GiveUp) {
        let count = word.utf8CodeUnitCount
        guard position + count <= bytes.count, matches(position..<(position + count), word) else { throw GiveUp() }
        position += count
    }

    /// Whether the bytes in `range` are exactly `word`.
    private func matches(_ range: Range<Int>, _ word: StaticString) -> Bool {
        guard range.count == word.utf8CodeUnitCount else { return false }
        return word.withUTF8Buffer { expected in
            for index in 0..<expected.count where bytes[range.lowerBound + index] != expected[index] {
                return false
            }
            return true
        }
    }

    private mutating func skipSpace() {
        while position < bytes.count {
            switch bytes[position] {
            case UInt8(ascii: " "), UInt8(ascii: "\t"), UInt8(ascii: "\n"), UInt8(ascii: "\r"): position += 1
            default: return
            }
        }
    }

    private func peek() -> UInt8? {
        position < bytes.count ? bytes[position] : nil
    }

    private mutating func expect(_ byte: UInt8) throws(GiveUp) {
        guard peek() == byte else { throw GiveUp() }
        position += 1
    }
}
