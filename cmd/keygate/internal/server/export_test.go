package server

// MinNewAge is minNewAge, for tests in package server_test.
const MinNewAge = minNewAge
