import Foundation

/// RFC 4180 CSV, as spreadsheets and `csv` readers expect it: a field holding a comma, a quote, a
/// carriage return or a line feed (or starting or ending with a space) is quoted and its quotes
/// doubled; lines end with CRLF. Reports carry user keys and reasons that may hold any of these.
public enum CSV {
    /// One field, quoted when it must be.
    public static func field(_ value: String) -> String {
        let needsQuotes =
            value.contains { $0 == "," || $0 == "\"" || $0 == "\r" || $0 == "\n" || $0 == "\r\n" }
            || value.hasPrefix(" ") || value.hasSuffix(" ")
        guard needsQuotes else { return value }
        return "\"" + value.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }

    /// One record, with its line ending.
    public static func line(_ fields: [String]) -> String {
        fields.map(field).joined(separator: ",") + "\r\n"
    }

    /// Parses CSV text into records (quoted fields may hold commas, quotes and line breaks): what
    /// tests and tools use to read a report back.
    public static func parse(_ text: String) -> [[String]] {
        var records: [[String]] = []
        var record: [String] = []
        var field = ""
        var quoted = false
        var fieldStarted = false
        var characters = text.makeIterator()
        var pending: Character? = nil
        func next() -> Character? {
            if let character = pending {
                pending = nil
                return character
            }
            return characters.next()
        }
        // Bounded: every pass consumes one character of `text`.
        while let character = next() {
            if quoted {
                if character == "\"" {
                    if let following = next() {
                        if following == "\"" {
                            field.append("\"")
                        } else {
                            quoted = false
                            pending = following
                        }
                    } else {
                        quoted = false
                    }
                } else {
                    field.append(character)
                }
                continue
            }
            switch character {
            case "\"" where !fieldStarted:
                quoted = true
                fieldStarted = true
            case ",":
                record.append(field)
                field = ""
                fieldStarted = false
            case "\r\n", "\n", "\r":
                record.append(field)
                records.append(record)
                record = []
                field = ""
                fieldStarted = false
            default:
                field.append(character)
                fieldStarted = true
            }
        }
        if fieldStarted || !record.isEmpty {
            record.append(field)
            records.append(record)
        }
        return records
    }
}

/// Writes a report file in pages: to `PATH.partial` first, renamed to `PATH` once complete, so a
/// reader never mistakes a half-written export (interrupted, disk full) for the whole one.
final class ReportFileWriter {
    let path: String
    private let partialPath: String
    private let handle: FileHandle
    private var buffer = Data()

    /// Creates (or truncates) `PATH.partial`.
    init(path: String) throws {
        self.path = path
        partialPath = path + ".partial"
        let directory = (path as NSString).deletingLastPathComponent
        if !directory.isEmpty {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        }
        guard FileManager.default.createFile(atPath: partialPath, contents: nil),
            let handle = FileHandle(forWritingAtPath: partialPath)
        else { throw PipelineError(.invalidOptions, "cannot write the file \(path)") }
        self.handle = handle
    }

    /// Appends one CSV record; written out in blocks of about 1 MiB.
    func write(_ fields: [String]) throws {
        buffer.append(contentsOf: CSV.line(fields).utf8)
        if buffer.count >= 1 << 20 { try flush() }
    }

    private func flush() throws {
        guard !buffer.isEmpty else { return }
        try handle.write(contentsOf: buffer)
        buffer.removeAll(keepingCapacity: true)
    }

    /// Writes what is buffered, closes the file and moves it to its final name.
    func finish() throws {
        try flush()
        try handle.close()
        if FileManager.default.fileExists(atPath: path) { try FileManager.default.removeItem(atPath: path) }
        try FileManager.default.moveItem(atPath: partialPath, toPath: path)
    }

    /// Closes and removes the partial file after a failure.
    func abandon() {
        try? handle.close()
        try? FileManager.default.removeItem(atPath: partialPath)
    }
}
