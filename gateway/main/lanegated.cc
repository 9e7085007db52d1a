// Placeholder entry point until the module lands.
int main() { return 0; }
