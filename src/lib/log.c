/* placeholder: being written */
typedef int postern_placeholder_t;
