// Exec-session hook: answers with the user, group and supplementary groups its worker runs as.
exports.handle = () => ({
  response: { status: 200, body: { uid: process.getuid(), gid: process.getgid(), groups: process.getgroups().join(" ") } },
});
