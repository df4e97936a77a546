// currant.h included by a C++ compiler: proves it parses as C++ (extern "C")
// and that C and C++ agree on the layout of its structs.
#include <currant.h>

extern "C" size_t currant_test_cpp_sizeof_job(void) { return sizeof(currant_job); }
extern "C" size_t currant_test_cpp_sizeof_reservation(void) { return sizeof(currant_reservation); }
extern "C" int currant_test_cpp_stale_code(void) {
    enum currant_status code = CURRANT_ERR_STALE_HANDLE; // the enum tag is usable from C++
    return code;
}
