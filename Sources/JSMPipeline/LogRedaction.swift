import JSMDomain

/// Masks email addresses in what the pipeline logs about identities.
///
/// Logs name identities by user key and user name, but in Jira Service Management those are often
/// the person's email: a portal customer's user name is the address they signed up with, and a
/// legacy user key is the user name. Logs must not expose mailboxes by default, so an identifier
/// or a detail sentence that holds one is logged with it masked (`a***@example.com`), the way
/// ``NormalizedEmail`` prints itself; anything else is logged unchanged.
public enum LogRedaction {
    /// A user key or user name for a log line: itself, or masked when it is an email address.
    public static func identifier(_ value: String) -> String {
        guard value.contains("@") else { return value }
        return NormalizedEmail(value)?.masked ?? "***"
    }

    /// A sentence for a log line (an anomaly's detail, an error) with every word that holds an `@`
    /// masked; words end at blanks, quotes, brackets and commas.
    public static func text(_ value: String) -> String {
        guard value.contains("@") else { return value }
        var result = ""
        var word = ""
        result.reserveCapacity(value.count)
        func flush() {
            result += word.contains("@") ? identifier(word) : word
            word = ""
        }
        // Bounded: one pass over the characters of `value`.
        for character in value {
            if character.isWhitespace || "'\"()[]{}<>,;".contains(character) {
                flush()
                result.append(character)
            } else {
                word.append(character)
            }
        }
        flush()
        return result
    }
}
