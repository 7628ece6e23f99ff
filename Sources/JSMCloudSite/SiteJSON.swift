import NIOCore

/// A body the site writes straight into a `ByteBuffer`, without `JSONEncoder`.
///
/// Account creation is the site's hot path: at 10,000 creations a second, `JSONEncoder`'s
/// reflection-like containers, boxing and intermediate `Data` cost more CPU than the SQL insert.
/// The bodies on that path (the user and customer DTOs and both error shapes) write themselves
/// field by field instead; the rarer bodies keep `Encodable`.
protocol JSONBody {
    /// Writes the body as one JSON value.
    func write(to json: inout JSONWriter)
}

extension Array: JSONBody where Element: JSONBody {
    func write(to json: inout JSONWriter) {
        json.array {
            for element in self { $0.element(element) }
        }
    }
}

/// Writes JSON text into a `ByteBuffer`: objects, arrays, strings (escaped per RFC 8259, slashes
/// left as they are, as the site's `JSONEncoder` bodies do), booleans and integers.
///
/// Members and elements put their own commas in, so callers only list fields in order.
struct JSONWriter {
    /// The text written so far.
    private(set) var buffer: ByteBuffer
    /// Whether the next member or element is the first of its container (no comma before it).
    private var atFirst = true

    /// A writer with room for `capacity` bytes before it grows.
    init(capacity: Int = 512) {
        buffer = ByteBufferAllocator().buffer(capacity: capacity)
    }

    /// One value as a complete JSON text.
    static func text(of body: some JSONBody, capacity: Int = 512) -> ByteBuffer {
        var json = JSONWriter(capacity: capacity)
        body.write(to: &json)
        return json.buffer
    }

    /// Writes an object whose members `body` writes.
    mutating func object(_ body: (inout JSONWriter) -> Void) {
        buffer.writeInteger(UInt8(ascii: "{"))
        atFirst = true
        body(&self)
        buffer.writeInteger(UInt8(ascii: "}"))
        atFirst = false
    }

    /// Writes an array whose elements `body` writes.
    mutating func array(_ body: (inout JSONWriter) -> Void) {
        buffer.writeInteger(UInt8(ascii: "["))
        atFirst = true
        body(&self)
        buffer.writeInteger(UInt8(ascii: "]"))
        atFirst = false
    }

    /// An array element.
    mutating func element(_ value: some JSONBody) {
        separate()
        value.write(to: &self)
        atFirst = false
    }

    /// A string member.
    mutating func member(_ key: StaticString, _ value: String) {
        writeKey(key)
        string(value)
        atFirst = false
    }

    /// A boolean member.
    mutating func member(_ key: StaticString, _ value: Bool) {
        writeKey(key)
        buffer.writeStaticString(value ? "true" : "false")
        atFirst = false
    }

    /// An integer member.
    mutating func member(_ key: StaticString, _ value: Int) {
        writeKey(key)
        buffer.writeString(String(value))
        atFirst = false
    }

    /// A member whose value is an array of strings.
    mutating func member(_ key: StaticString, strings values: [String]) {
        writeKey(key)
        buffer.writeInteger(UInt8(ascii: "["))
        for (index, value) in values.enumerated() {
            if index > 0 { buffer.writeInteger(UInt8(ascii: ",")) }
            string(value)
        }
        buffer.writeInteger(UInt8(ascii: "]"))
        atFirst = false
    }

    /// A member whose value is an object of string members, keys in sorted order (stable output).
    mutating func member(_ key: StaticString, stringMap values: [String: String]) {
        writeKey(key)
        buffer.writeInteger(UInt8(ascii: "{"))
        for (index, entry) in values.sorted(by: { $0.key < $1.key }).enumerated() {
            if index > 0 { buffer.writeInteger(UInt8(ascii: ",")) }
            string(entry.key)
            buffer.writeInteger(UInt8(ascii: ":"))
            string(entry.value)
        }
        buffer.writeInteger(UInt8(ascii: "}"))
        atFirst = false
    }

    /// A member whose value is another body (an array of bodies, for instance).
    mutating func member(_ key: StaticString, body value: some JSONBody) {
        writeKey(key)
        value.write(to: &self)
        atFirst = false
    }

    /// A member whose value is an object that `body` writes.
    mutating func member(_ key: StaticString, object body: (inout JSONWriter) -> Void) {
        writeKey(key)
        object(body)
    }

    private mutating func separate() {
        if !atFirst { buffer.writeInteger(UInt8(ascii: ",")) }
    }

    /// Writes `"key":`; keys are the site's own constants, which need no escaping.
    private mutating func writeKey(_ key: StaticString) {
        separate()
        buffer.writeInteger(UInt8(ascii: "\""))
        buffer.writeStaticString(key)
        buffer.writeStaticString("\":")
    }

    /// Writes a quoted, escaped string: runs of plain bytes are copied at once, and only `"`, `\`
    /// and control characters are escaped.
    mutating func string(_ value: String) {
        buffer.writeInteger(UInt8(ascii: "\""))
        var value = value
        value.withUTF8 { utf8 in
            let bytes = UnsafeRawBufferPointer(utf8)
            var runStart = 0
            for index in 0..<bytes.count {
                let byte = bytes[index]
                guard byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") else { continue }
                if runStart < index { buffer.writeBytes(UnsafeRawBufferPointer(rebasing: bytes[runStart..<index])) }
                writeEscape(byte)
                runStart = index + 1
            }
            if runStart < bytes.count {
                buffer.writeBytes(UnsafeRawBufferPointer(rebasing: bytes[runStart..<bytes.count]))
            }
        }
        buffer.writeInteger(UInt8(ascii: "\""))
    }

    private mutating func writeEscape(_ byte: UInt8) {
        switch byte {
        case UInt8(ascii: "\""): buffer.writeStaticString("\\\"")
        case UInt8(ascii: "\\"): buffer.writeStaticString("\\\\")
        case 0x0A: buffer.writeStaticString("\\n")
        case 0x0D: buffer.writeStaticString("\\r")
        case 0x09: buffer.writeStaticString("\\t")
        case 0x08: buffer.writeStaticString("\\b")
        case 0x0C: buffer.writeStaticString("\\f")
        default:
            let hex: StaticString = "0123456789abcdef"
            buffer.writeStaticString("\\u00")
            hex.withUTF8Buffer { digits in
                buffer.writeInteger(digits[Int(byte >> 4)])
                buffer.writeInteger(digits[Int(byte & 0x0F)])
            }
        }
    }
}
