# CMake toolchain for 32-bit Arm (hard-float) Linux boards with Debian's gcc-arm-linux-gnueabihf and
# armhf multiarch libraries (libuv1-dev:armhf, libmbedtls-dev:armhf). The common/ code and the build
# are ready for it; the agent's ptrace layer has no armhf backend yet, so CMake then skips the agent
# with a warning and only common/ is built.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR armv7l)
set(RSPROF_CROSS_TRIPLE arm-linux-gnueabihf)
set(CMAKE_C_COMPILER ${RSPROF_CROSS_TRIPLE}-gcc)
set(CMAKE_CXX_COMPILER ${RSPROF_CROSS_TRIPLE}-g++)
set(CMAKE_LIBRARY_ARCHITECTURE ${RSPROF_CROSS_TRIPLE})
set(CMAKE_FIND_ROOT_PATH /usr/${RSPROF_CROSS_TRIPLE} /usr/lib/${RSPROF_CROSS_TRIPLE})
set(CMAKE_LIBRARY_PATH /usr/lib/${RSPROF_CROSS_TRIPLE})
set(CMAKE_IGNORE_PATH /usr/lib/x86_64-linux-gnu /lib/x86_64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
find_program(RSPROF_QEMU qemu-arm)
if(RSPROF_QEMU)
  set(CMAKE_CROSSCOMPILING_EMULATOR ${RSPROF_QEMU} -L /usr/${RSPROF_CROSS_TRIPLE})
endif()
