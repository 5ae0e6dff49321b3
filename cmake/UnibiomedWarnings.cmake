# Warning flags for the project's own targets (not for third-party headers, which are
# included as SYSTEM).
function(unibiomed_set_warnings target)
  if(CMAKE_CXX_COMPILER_ID MATCHES "GNU|Clang")
    target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic -Wshadow
                                             -Wnon-virtual-dtor -Wold-style-cast
                                             -Wcast-align -Woverloaded-virtual
                                             -Wnull-dereference -Wformat=2)
  endif()
endfunction()
