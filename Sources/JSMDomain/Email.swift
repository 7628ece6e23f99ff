/// An email address in the form identities are matched on: trimmed, then lower-cased.
///
/// The server and the cloud site both treat addresses case-insensitively, so two spellings of one
/// mailbox (`" Ann@Example.com"`, `"ann@example.com"`) must meet on one value before the duplicate
/// and existing-account rules run. Normalisation runs on millions of identities: plain ASCII
/// addresses that are already normal are returned without copying, and other ASCII addresses cost
/// one allocation at most.
public struct NormalizedEmail: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// The normalised address; never empty.
    public let value: String

    /// Normalises an address read from the source; `nil` when it is missing or only whitespace,
    /// because such an identity has nothing to be matched on.
    public init?(_ raw: String?) {
        guard let raw else { return nil }
        let normalized = Self.normalize(raw)
        guard !normalized.isEmpty else { return nil }
        value = normalized
    }

    /// Whether Atlassian accepts this address, by its assessment rule.
    public var validity: EmailValidity { EmailValidity(normalized: value) }

    /// The address with the local part hidden (`a***@example.com`), for logs and reports that must
    /// not expose mailboxes by default.
    public var masked: String {
        guard let at = value.firstIndex(of: "@"), at != value.startIndex else { return "***" }
        return String(value[value.startIndex]) + "***" + value[at...]
    }

    /// Masked, so that interpolating an email into a log line never prints the mailbox by accident.
    public var description: String { masked }

    /// Orders by the normalised value, the order batches are cut in.
    public static func < (lhs: NormalizedEmail, rhs: NormalizedEmail) -> Bool {
        lhs.value < rhs.value
    }

    /// Trims Unicode whitespace and newlines at both ends, then lower-cases.
    static func normalize(_ raw: String) -> String {
        let fast = raw.utf8.withContiguousStorageIfAvailable { bytes in normalizeASCII(raw, bytes) }
        if let fast, let result = fast { return result }
        return normalizeUnicode(raw)
    }

    /// The ASCII path: `nil` when the address holds a non-ASCII byte and needs the Unicode path.
    private static func normalizeASCII(_ raw: String, _ bytes: UnsafeBufferPointer<UInt8>) -> String? {
        var hasUpper = false
        for byte in bytes {
            if byte >= 0x80 { return nil }
            if ASCII.isUpper(byte) { hasUpper = true }
        }
        var start = 0
        var end = bytes.count
        while start < end, ASCII.isWhitespace(bytes[start]) { start += 1 }
        while end > start, ASCII.isWhitespace(bytes[end - 1]) { end -= 1 }
        if !hasUpper, start == 0, end == bytes.count { return raw }
        let count = end - start
        return String(unsafeUninitializedCapacity: count) { buffer in
            for offset in 0..<count {
                let byte = bytes[start + offset]
                buffer[offset] = ASCII.isUpper(byte) ? byte | 0x20 : byte
            }
            return count
        }
    }

    /// The general path for addresses with non-ASCII characters (rare, and invalid anyway).
    private static func normalizeUnicode(_ raw: String) -> String {
        let scalars = raw.unicodeScalars
        var start = scalars.startIndex
        var end = scalars.endIndex
        while start < end, scalars[start].properties.isWhitespace { scalars.formIndex(after: &start) }
        while end > start, scalars[scalars.index(before: end)].properties.isWhitespace {
            scalars.formIndex(before: &end)
        }
        return String(Substring(scalars[start..<end])).lowercased()
    }
}

/// Whether an address passes Atlassian's assessment rule, and if not, why not.
///
/// The rule: not empty, matching `^[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]+$`, and a local part
/// of at most 64 characters. Operators fix addresses at the source, so the reason must be specific.
public enum EmailValidity: String, Sendable, Hashable, CaseIterable {
    /// The address passes the rule.
    case valid
    /// The source has no address (NULL), or only whitespace.
    case missing
    /// The address does not match the pattern.
    case malformed
    /// The part before `@` is longer than 64 characters.
    case localPartTooLong = "local_part_too_long"

    /// The longest local part Atlassian accepts.
    public static let maximumLocalPartLength = 64

    /// Applies the rule to an address as the source holds it (it is normalised first).
    public init(raw: String?) {
        guard let email = NormalizedEmail(raw) else {
            self = .missing
            return
        }
        self = email.validity
    }

    /// Applies the rule to an already normalised address, reading its bytes once without copying.
    init(normalized: String) {
        if let result = normalized.utf8.withContiguousStorageIfAvailable(Self.check) {
            self = result
        } else {
            self = Array(normalized.utf8).withUnsafeBufferPointer(Self.check)
        }
    }

    /// A hand-written equivalent of the pattern: cheaper than a regular expression on every identity.
    private static func check(_ bytes: UnsafeBufferPointer<UInt8>) -> EmailValidity {
        let count = bytes.count
        guard count > 0 else { return .missing }
        var atIndex: Int?
        for index in 0..<count where bytes[index] == ASCII.at {
            if atIndex != nil { return .malformed }
            atIndex = index
        }
        guard let at = atIndex, at > 0 else { return .malformed }
        for index in 0..<at where !ASCII.isLocalPartByte(bytes[index]) { return .malformed }
        let domainStart = at + 1
        var lastDot = -1
        for index in domainStart..<count {
            let byte = bytes[index]
            if !ASCII.isDomainByte(byte) { return .malformed }
            if byte == ASCII.dot { lastDot = index }
        }
        // The top-level label follows the last dot: at least one letter, and something before the dot.
        guard lastDot > domainStart, lastDot < count - 1 else { return .malformed }
        for index in (lastDot + 1)..<count where !ASCII.isLetter(bytes[index]) { return .malformed }
        return at > maximumLocalPartLength ? .localPartTooLong : .valid
    }
}

/// Byte classes of the email rule, so the checks read like the pattern.
enum ASCII {
    static let at: UInt8 = 0x40
    static let dot: UInt8 = 0x2E

    static func isUpper(_ byte: UInt8) -> Bool { byte &- 0x41 < 26 }
    static func isLetter(_ byte: UInt8) -> Bool { (byte | 0x20) &- 0x61 < 26 }
    static func isDigit(_ byte: UInt8) -> Bool { byte &- 0x30 < 10 }

    /// Space, tab, line feed, vertical tab, form feed, carriage return.
    static func isWhitespace(_ byte: UInt8) -> Bool { byte == 0x20 || byte &- 0x09 < 5 }

    /// `[A-Za-z0-9._%+-]`
    static func isLocalPartByte(_ byte: UInt8) -> Bool {
        isLetter(byte) || isDigit(byte) || byte == 0x2E || byte == 0x5F || byte == 0x25
            || byte == 0x2B || byte == 0x2D
    }

    /// `[A-Za-z0-9.-]`
    static func isDomainByte(_ byte: UInt8) -> Bool {
        isLetter(byte) || isDigit(byte) || byte == 0x2E || byte == 0x2D
    }
}
