/// The one error type of the domain rules.
///
/// The producer shows it to the operator before publishing anything, so the message names the
/// option and the projects that are wrong and says what to use instead.
public struct DomainError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What was wrong, coarse enough to switch on (and to map to an exit code).
    public enum Code: String, Sendable, Hashable, CaseIterable {
        /// `--customers none` with a service project selected: its requests reference customers.
        case customersNoneWithServiceProject = "customers_none_with_service_project"
        /// `--include-requestless` without `--customers all`, where it would have no effect.
        case requestlessWithoutAllCustomers = "requestless_without_all_customers"
    }

    /// What was wrong.
    public var code: Code
    /// A sentence naming the cause and the way out.
    public var message: String
    /// Where in this code base the error was raised, for bug reports.
    public var location: String

    /// Creates an error; the source location is captured automatically.
    public init(_ code: Code, _ message: String, file: String = #fileID, line: Int = #line) {
        self.code = code
        self.message = message
        self.location = "\(file):\(line)"
    }

    /// One line for the operator.
    public var description: String { "\(code.rawValue): \(message)" }
}
