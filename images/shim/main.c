/* Placeholder until the shim lands: exits 0. */
int main(void) { return 0; }
