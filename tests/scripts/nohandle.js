// An exec-session script that exports only greet(), not the entry point.
module.exports.greet = () => "hello";
